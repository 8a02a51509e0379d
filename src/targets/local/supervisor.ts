/**
 * The local target's supervisor: keeps each app's replicas (detached processes) alive and routed, like a kubelet and
 * a ReplicaSet controller together. Here: the replicas it keeps (start in the release dir with the app's
 * environment, adoption after an engine restart, stop with drain and grace), the level-based healer, the route
 * table it publishes to the proxy, and the replica-set operations progressive rollouts and reverts use. Beside it:
 * supervisor-types.ts (its vocabulary), adoption.ts (what a starting engine adopts), probe-loop.ts (readiness and
 * liveness), restart-policy.ts (backoff), app-status.ts (health and status), replica-process.ts (spawn, terminate,
 * the stored record), rolling-update.ts (the rolling strategy), revert.ts (the way back).
 */
import { closeSync } from 'node:fs';
import type { DesiredApp, Probe } from '../../core/model.js';
import { appKey } from '../../core/types.js';
import { openLogFd, tailLines } from './logs.js';
import { runProbe, type ProbeResult } from './probes.js';
import { baseEnv, isSameProcess, signalGroup } from './process.js';
import type { TrafficSplit } from './proxy/protocol.js';
import type { RolloutRecord } from './rollout-state.js';
import { revertToStable } from './revert.js';
import { adoptionPlan } from './adoption.js';
import { appStatusOf, notReadyMessage } from './app-status.js';
import { scheduleProbes, type ProbeHost } from './probe-loop.js';
import { restartDelay } from './restart-policy.js';
import { blankReplica, freePort, replicaRow, spawnReplica, terminateReplica } from './replica-process.js';
import { rollingUpdate, type RollingHost, type RollingOptions } from './rolling-update.js';
import { groupOf, type AppRun, type AppStatus, type ReleaseRef, type Replica, type RouteTable, type RolloutResult, type SetRef, type SupervisorOptions } from './supervisor-types.js';
import { templateHash } from './spec-hash.js';
import { adoptReplicaCgroup, detectCgroups, limitsStatus, prepareReplicaCgroup, removeReplicaCgroup, wasOomKilled, type CgroupSystem } from './cgroups.js';
import { dataDirOf, identityEnv, policyFromEnv, prepareDataDir, runAsFor, type IsolationPolicy } from './isolation.js';
import type { RunAs } from './users.js';
import { formatBytes } from '../../render/schema-isolation.js';

export type { AppRun, AppStatus, ReleaseRef, ReplicaStatus, RouteSink, RouteTable, RolloutResult, SetRef, SupervisorOptions } from './supervisor-types.js';
export { groupOf };

/**
 * Keeps supervised replicas alive the way a kubelet keeps pods alive: detached processes, probes, restarts with
 * exponential backoff, re-adoption after an engine restart, and rolling updates behind the proxy.
 */
export class Supervisor {
  private readonly apps = new Map<string, AppRun>();
  private readonly replicas = new Map<string, Replica>();
  /** The same replicas indexed by `env/app`: the healer and status look them up many times a second. */
  private readonly byApp = new Map<string, Set<Replica>>();
  /** Weighted traffic between an app's replica sets while a progressive rollout runs. */
  private readonly traffic = new Map<string, TrafficSplit>();
  private tick?: NodeJS.Timeout;
  private publishing?: Promise<void>;
  private publishAgain = false;
  private closed = false;
  private readonly tickMs: number;
  private readonly startupProbeMs: number;

  private readonly policy: IsolationPolicy;
  private cgroupSystem?: Promise<CgroupSystem>;
  /** What the probe loop (probe-loop.ts) and the rolling update (rolling-update.ts) use of the supervisor. */
  private readonly probeHost: ProbeHost;
  private readonly rollingHost: RollingHost;

  constructor(private readonly o: SupervisorOptions) {
    this.tickMs = o.tickMs ?? 200;
    this.startupProbeMs = o.startupProbeMs ?? 100;
    this.policy = o.isolation ?? policyFromEnv();
    this.probeHost = {
      closed: () => this.closed,
      startupProbeMs: this.startupProbeMs,
      probe: (r, probe) => this.probe(r, probe),
      setReady: (r, ready) => this.setReady(r, ready),
      after: (r, ms, fn) => this.after(r, ms, fn),
      log: o.log,
    };
    this.rollingHost = {
      apps: this.apps,
      bus: o.bus,
      replicasOf: (key) => this.replicasOf(key),
      clearTimers: (r) => this.clearTimers(r),
      launch: (r) => this.launch(r),
      scaleTo: (run) => this.scaleTo(run),
      requestPublish: () => this.requestPublish(),
      published: async () => {
        await this.publishing;
      },
      waitReady: (r, deadline, signal) => this.waitReady(r, deadline, signal),
      waitAppReady: (run, deadline) => this.waitAppReady(run, deadline),
      notReadyMessage: (run, r) => this.notReadyMessage(run, r),
      lastLogLines: (env, app) => this.lastLogLines(env, app),
      startNew: (run) => this.startNew(run),
      stopReplica: (r) => this.stopReplica(r),
      revert: (previous) => revertToStable(this, previous),
    };
  }

  /** The machine's cgroups, found on first use. */
  cgroups(): Promise<CgroupSystem> {
    this.cgroupSystem ??= (this.o.cgroups ?? detectCgroups)();
    return this.cgroupSystem;
  }

  /**
   * Re-adopts the replicas recorded in the store (adoption.ts): the same pid and start time, or it is restarted. The
   * new set of a rollout the engine stopped in the middle of (`interrupted`) keeps its own spec, and the proxy its
   * weights.
   */
  async start(interrupted: RolloutRecord[] = []): Promise<void> {
    const plan = adoptionPlan(this.o.store.inventory(), this.o.store.replicas(), interrupted);
    for (const row of plan.stale) {
      // Recorded but no longer in the inventory: a prune that did not finish. Stop it.
      if (isSameProcess(row.pid, row.startTime)) signalGroup(row.pid, 'SIGTERM');
      this.o.store.deleteReplica(row.id);
    }
    for (const [key, run] of plan.apps) this.apps.set(key, run);
    for (const { row, spec: replicaSpec } of plan.replicas) {
      const r = this.newReplica(row.env, row.app, replicaSpec, row.specHash, { id: row.releaseId, dir: row.releaseDir, hash: row.releaseHash }, row.port, row.id, row.logPath);
      r.startedAt = row.startedAt;
      if (isSameProcess(row.pid, row.startTime)) {
        if (replicaSpec.resources) {
          const sys = await this.cgroups();
          r.limits = limitsStatus(sys, replicaSpec.resources);
          r.cgroup = await adoptReplicaCgroup(sys, row.env, row.app, row.id, replicaSpec.resources).catch(() => undefined);
        }
        r.runAs = await runAsFor(replicaSpec, this.policy).catch(() => undefined);
        r.pid = row.pid;
        r.startTime = row.startTime;
        r.state = 'running';
        // It was serving before the engine went away; the proxy still routes to it. Probes confirm at once.
        r.ready = true;
        r.everReady = true;
        r.readySince = Date.now();
        this.o.bus.publish({ type: 'replica.adopted', env: r.env, app: r.app, replica: r.id, pid: r.pid });
        this.o.log.info({ env: r.env, app: r.app, replica: r.id, pid: r.pid }, 'replica adopted');
        scheduleProbes(this.probeHost, r, 0);
      } else {
        this.o.bus.publish({ type: 'drift.detected', env: r.env, app: r.app, kind: 'process-exited', message: `replica ${r.id} (pid ${row.pid}) is gone` });
        void this.launch(r);
      }
    }
    for (const [key, split] of plan.traffic) this.traffic.set(key, split);
    this.tick = setInterval(() => this.heal(), this.tickMs);
    this.tick.unref();
    this.requestPublish();
  }

  /** Stops supervising without touching the processes: they keep running for the next engine to adopt. */
  async detach(): Promise<void> {
    this.closed = true;
    if (this.tick) clearInterval(this.tick);
    for (const r of this.replicas.values()) this.clearTimers(r);
    await this.publishing;
  }

  status(env?: string): AppStatus[] {
    const out: AppStatus[] = [];
    for (const run of this.apps.values()) {
      if (env && run.env !== env) continue;
      out.push(this.appStatus(run));
    }
    return out;
  }

  appStatusOf(env: string, app: string): AppStatus | undefined {
    const run = this.apps.get(appKey(env, app));
    return run && this.appStatus(run);
  }

  /** The app's current set (the new one while a progressive rollout runs). */
  runOf(env: string, app: string): AppRun | undefined {
    return this.apps.get(appKey(env, app));
  }


  /**
   * Rolls `spec` out replica by replica (rolling-update.ts). `onReplace`: called once, before the first replica is
   * replaced (to record the rolling update, rollout-state.ts). `interrupt` (the engine stops): the update stops where
   * it is, nothing rolled back, for the next engine to finish or revert (outcome `interrupted`).
   */
  rollout(spec: DesiredApp, release: ReleaseRef, revision: string, opts: RollingOptions = {}): Promise<RolloutResult> {
    return rollingUpdate(this.rollingHost, spec, release, revision, opts);
  }

  /** Stops every replica of an app (drained first) and forgets it. */
  async remove(env: string, app: string): Promise<void> {
    const key = appKey(env, app);
    const run = this.apps.get(key);
    if (run) run.rollingOut = true; // keeps the healer away while stopping
    await Promise.all(this.replicasOf(key).map((r) => this.stopReplica(r)));
    this.apps.delete(key);
    this.traffic.delete(key);
    this.requestPublish();
    await this.publishing;
  }

  /** Stops every supervised process (used by `keelson down`). */
  async stopAll(): Promise<void> {
    await Promise.all([...this.apps.values()].map((run) => this.remove(run.env, run.app)));
  }

  logPathsOf(env: string, app: string): { replica: string; path: string }[] {
    return this.replicasOf(appKey(env, app)).map((r) => ({ replica: r.id, path: r.logPath }));
  }


  private appStatus(run: AppRun): AppStatus {
    return appStatusOf(run, this.replicasOf(appKey(run.env, run.app)));
  }

  private notReadyMessage(run: AppRun, r?: Replica): string {
    return notReadyMessage(run, this.replicasOf(appKey(run.env, run.app)), r);
  }

  private replicasOf(key: string): Replica[] {
    return [...(this.byApp.get(key) ?? [])];
  }

  private newReplica(env: string, app: string, spec: DesiredApp, template: string, release: ReleaseRef, port: number, id?: string, logPath?: string): Replica {
    const r = blankReplica(this.o.stateDir, env, app, spec, template, release, port, id, logPath);
    this.replicas.set(r.id, r);
    const key = appKey(env, app);
    if (!this.byApp.has(key)) this.byApp.set(key, new Set());
    this.byApp.get(key)!.add(r);
    return r;
  }

  /** The environment every process of an app gets (replicas and `keelson run` one-offs alike); add secrets here. */
  processEnv(spec: DesiredApp): Record<string, string> {
    // HOST tells frameworks that honour it to bind loopback, where probes and the proxy connect.
    // DATA_DIR: the app's private writable directory, kept across releases (see isolation.ts).
    return { ...baseEnv(), HOST: '127.0.0.1', ...spec.vars, KEELSON_ENV: spec.env, KEELSON_APP: spec.name, KEELSON_VERSION: spec.version, DATA_DIR: dataDirOf(this.o.stateDir, spec.env, spec.name) };
  }

  /** Who the app's processes run as (undefined: the engine's user); throws IsolationError when refused. */
  runAsOf(spec: DesiredApp): Promise<RunAs | undefined> {
    return runAsFor(spec, this.policy);
  }

  /** What a replica's process runs with: the app's environment, its secret env vars, its port and id. */
  private async replicaEnv(r: Replica): Promise<Record<string, string>> {
    const secretEnv = (await this.o.secretEnv?.(r.spec, r.template)) ?? {};
    return { ...this.processEnv(r.spec), ...identityEnv(r.runAs), ...secretEnv, PORT: String(r.port), KEELSON_REPLICA: r.id };
  }

  /**
   * A probe attempt in the replica's own context: an exec probe runs in the release dir with exactly the
   * environment the replica got (secrets included), as a user's `psql …` check expects.
   */
  private async probe(r: Replica, probe: Probe): Promise<ProbeResult> {
    const env = probe.exec ? await this.probeEnv(r) : {};
    // Detached meanwhile: the replica is the next engine's to probe.
    if (this.closed) return { ok: false, message: 'not supervised any more' };
    const ids = r.runAs ? { uid: r.runAs.uid, gid: r.runAs.gid } : {};
    return runProbe(probe, { port: r.port, cwd: r.release.dir, env, ...ids });
  }

  /**
   * The environment of an exec probe. Secrets that cannot be decrypted (an engine restarted without its age key)
   * do not fail the probe: it runs without them, so replicas that serve keep serving and are not killed.
   */
  private async probeEnv(r: Replica): Promise<Record<string, string>> {
    if (r.runEnv) return r.runEnv;
    try {
      return (r.runEnv = await this.replicaEnv(r));
    } catch (err) {
      if (!r.probeWithoutSecretsWarned) {
        r.probeWithoutSecretsWarned = true;
        // Never the values: the message names files and keys only.
        this.o.log.warn({ env: r.env, app: r.app, replica: r.id, err: (err as Error).message }, 'secrets unavailable; exec probes run without secret env vars');
      }
      return { ...this.processEnv(r.spec), ...identityEnv(r.runAs), PORT: String(r.port), KEELSON_REPLICA: r.id };
    }
  }

  private async launch(r: Replica): Promise<void> {
    if (this.closed) return;
    r.state = 'starting';
    r.ready = false;
    r.everReady = false;
    r.readySince = undefined;
    r.livenessFailures = 0;
    r.readinessFailures = 0;
    r.readinessSuccesses = 0;
    r.reason = undefined;
    let env: Record<string, string>;
    try {
      // Who it runs as, its data dir and its cgroups: made again at each start (a user re-created, a cgroup gone).
      r.runAs = await this.runAsOf(r.spec);
      await prepareDataDir(this.o.stateDir, r.env, r.app, r.runAs);
      if (r.spec.resources) {
        const sys = await this.cgroups();
        r.limits = limitsStatus(sys, r.spec.resources);
        r.cgroup = await prepareReplicaCgroup(sys, r.env, r.app, r.id, r.spec.resources);
      }
    } catch (err) {
      r.lastExit = `cannot start: ${(err as Error).message}`;
      this.onExit(r, 0, null, null);
      return;
    }
    try {
      env = r.runEnv = await this.replicaEnv(r);
    } catch (err) {
      // Never the values: the message names files and keys only.
      r.lastExit = `secrets unavailable: ${(err as Error).message}`;
      this.onExit(r, 0, null, null);
      return;
    }
    // Stopped while its environment was being made (an app removed, the engine stopping): never start it.
    const stopped = () => this.closed || r.state === 'stopping' || r.state === 'stopped';
    if (stopped()) return;
    const fd = openLogFd(r.logPath);
    try {
      const { child, pid, startTime } = await spawnReplica(r, env, fd);
      if (stopped()) {
        // Stopped while it was being spawned: stopReplica found no process to end, so end it here.
        signalGroup(pid, 'SIGKILL');
        return;
      }
      r.child = child;
      r.pid = pid;
      r.startTime = startTime;
      r.startedAt = Date.now();
      r.state = 'running';
      child.once('exit', (code, signal) => void this.exited(r, pid, code, signal));
      this.o.store.putReplica(replicaRow(r));
      this.o.bus.publish({ type: 'replica.started', env: r.env, app: r.app, replica: r.id, pid, version: r.spec.version });
      scheduleProbes(this.probeHost, r, r.spec.readiness?.initialDelaySeconds ? r.spec.readiness.initialDelaySeconds * 1000 : 0);
    } catch (err) {
      r.lastExit = (err as Error).message;
      this.onExit(r, 0, null, null);
    } finally {
      closeSync(fd);
    }
  }

  /** An exit, told apart from an OOM kill by the replica's memory cgroup (killed by SIGKILL either way). */
  private async exited(r: Replica, pid: number, code: number | null, signal: NodeJS.Signals | null): Promise<void> {
    const oom = signal === 'SIGKILL' ? await wasOomKilled(r.cgroup).catch(() => false) : false;
    this.onExit(r, pid, code, signal, oom);
  }

  private onExit(r: Replica, pid: number, code: number | null, signal: NodeJS.Signals | null, oom = false): void {
    if (pid && pid !== r.pid) return; // an older incarnation
    this.clearTimers(r);
    const wasReady = r.ready;
    r.ready = false;
    r.child = undefined;
    if (pid) r.lastExit = signal ? `killed by ${signal}` : `exited with code ${code}`;
    if (oom) {
      r.reason = 'OOMKilled';
      const limit = r.spec.resources?.memory;
      r.lastExit = `OOMKilled: over its memory limit${limit ? ` of ${formatBytes(limit)}` : ''}`;
    }
    if (r.state === 'stopping' || r.state === 'stopped') {
      r.state = 'stopped';
      r.exited?.();
      return;
    }
    this.o.bus.publish({ type: 'replica.exited', env: r.env, app: r.app, replica: r.id, pid, code, signal, ...(oom ? { reason: 'OOMKilled' as const } : {}) });
    void tailLines(r.logPath, 5).then((lines) => (r.lastLogs = lines), () => undefined);
    this.o.bus.publish({ type: 'drift.detected', env: r.env, app: r.app, kind: 'process-exited', message: `replica ${r.id} ${r.lastExit}` });
    if (wasReady) this.requestPublish();
    if (this.closed) return;
    const delayMs = restartDelay(r, { wasReady, code, signal, oom });
    r.state = 'backoff';
    r.restarts++;
    this.o.bus.publish({ type: 'replica.restarted', env: r.env, app: r.app, replica: r.id, restarts: r.restarts, delayMs, ...(oom ? { reason: 'OOMKilled' } : {}) });
    this.o.log.warn({ env: r.env, app: r.app, replica: r.id, reason: r.lastExit, delayms: delayMs }, 'replica restarting');
    this.after(r, delayMs, () => void this.launch(r));
  }

  /** Runs `fn` later, unless the supervisor has been detached or stopped by then (its timers are cleared). */
  private after(r: Replica, ms: number, fn: () => void): void {
    if (this.closed) return;
    const t = setTimeout(() => {
      r.timers.delete(t);
      fn();
    }, ms);
    r.timers.add(t);
  }

  private clearTimers(r: Replica): void {
    for (const t of r.timers) clearTimeout(t);
    r.timers.clear();
  }


  private setReady(r: Replica, ready: boolean): void {
    if (r.ready === ready) return;
    r.ready = ready;
    if (ready) {
      r.everReady = true;
      r.readySince = Date.now();
      const run = this.apps.get(appKey(r.env, r.app));
      if (run?.stalled && this.readyCount(run) >= run.spec.replicas) run.stalled = undefined;
    }
    this.o.bus.publish({ type: 'replica.ready', env: r.env, app: r.app, replica: r.id, ready });
    this.requestPublish();
  }

  private waitReady(r: Replica, deadline: number, signal?: AbortSignal): Promise<boolean> {
    return this.waitUntil(() => r.ready, deadline, (e) => e.type === 'replica.ready' && e.replica === r.id, signal);
  }

  private waitAppReady(run: AppRun, deadline: number): Promise<boolean> {
    const key = appKey(run.env, run.app);
    return this.waitUntil(() => this.readyCount(run) >= run.spec.replicas, deadline, (e) => e.type === 'replica.ready' && appKey(e.env, e.app) === key);
  }

  /** Ready replicas of the app's current template. */
  private readyCount(run: AppRun): number {
    return this.replicasOf(appKey(run.env, run.app)).filter((r) => r.ready && r.template === run.template).length;
  }

  private waitUntil(done: () => boolean, deadline: number, wake: (e: { type: string } & Record<string, any>) => boolean, signal?: AbortSignal): Promise<boolean> {
    if (done()) return Promise.resolve(true);
    if (signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      // An aborted wait (a newer revision arrived) gives up at once, like a missed deadline.
      const onAbort = () => finish(false);
      const finish = (v: boolean) => {
        clearTimeout(timer);
        off();
        signal?.removeEventListener('abort', onAbort);
        resolve(v);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const timer = setTimeout(() => finish(done()), Math.max(0, deadline - Date.now()));
      const off = this.o.bus.subscribe((e) => {
        if (wake(e) && done()) finish(true);
      });
    });
  }

  /** Takes a replica out of rotation, lets in-flight requests finish, then SIGTERM, grace, SIGKILL. */
  private async stopReplica(r: Replica): Promise<void> {
    if (r.state === 'stopped') return;
    const wasInRotation = r.ready && !r.draining;
    r.draining = true;
    const prevState = r.state;
    r.state = 'stopping';
    this.clearTimers(r);
    if (wasInRotation) {
      this.requestPublish();
      await this.publishing;
      await this.o.routes.drain([r.id], r.spec.terminationGracePeriodSeconds * 1000).catch(() => undefined);
    }
    if (prevState === 'running' || prevState === 'starting') await terminateReplica(r);
    if (r.cgroup) await removeReplicaCgroup(await this.cgroups(), r.env, r.app, r.id).catch(() => undefined);
    r.state = 'stopped';
    this.replicas.delete(r.id);
    this.byApp.get(appKey(r.env, r.app))?.delete(r);
    this.o.store.deleteReplica(r.id);
  }

  /** Level-based healing: dead adopted processes restart, missing replicas are created, extra ones stopped. */
  private heal(): void {
    for (const r of this.replicas.values()) {
      if (r.state === 'running' && !r.child && !isSameProcess(r.pid, r.startTime)) {
        // Adopted: no exit status. Only the cgroup can tell an OOM kill; checked once (the state moves on).
        r.state = 'starting';
        void wasOomKilled(r.cgroup).catch(() => false).then((oom) => this.onExit(r, r.pid, null, null, oom));
      }
    }
    for (const run of this.apps.values()) if (!run.rollingOut) this.scaleTo(run);
  }

  private scaleTo(run: AppRun): void {
    const key = appKey(run.env, run.app);
    const current = this.replicasOf(key).filter(
      (r) => r.template === run.template && r.release.id === run.release.id && r.state !== 'stopping' && r.state !== 'stopped',
    );
    if (current.length < run.spec.replicas) {
      this.o.bus.publish({ type: 'drift.detected', env: run.env, app: run.app, kind: 'replica-missing', message: `${current.length}/${run.spec.replicas} replicas present` });
      for (let i = current.length; i < run.spec.replicas; i++) void this.startNew(run);
    } else if (current.length > run.spec.replicas) {
      const extra = current.sort((a, b) => Number(a.ready) - Number(b.ready)).slice(0, current.length - run.spec.replicas);
      for (const r of extra) {
        this.o.bus.publish({ type: 'drift.detected', env: run.env, app: run.app, kind: 'replica-extra', message: `stopping extra replica ${r.id}` });
        void this.stopReplica(r);
      }
    }
  }

  /** Registers the replica at once (so the healer counts it) and launches it once it has a port. */
  private async startNew(run: AppRun): Promise<Replica> {
    const r = this.newReplica(run.env, run.app, run.spec, run.template, run.release, 0);
    r.port = await freePort();
    await this.launch(r);
    return r;
  }

  /** Publishes the full routing table; coalesces bursts into one PUT and always sends the latest state. */
  requestPublish(): void {
    if (this.closed) return;
    if (this.publishing) {
      this.publishAgain = true;
      return;
    }
    this.publishing = (async () => {
      do {
        this.publishAgain = false;
        await this.o.routes.publish(this.routeTable()).catch((err) => {
          this.o.log.error({ err: (err as Error).message }, 'route publish failed');
        });
      } while (this.publishAgain && !this.closed);
      this.publishing = undefined;
    })();
  }

  routeTable(): RouteTable {
    const routes: RouteTable['routes'] = [];
    for (const run of this.apps.values()) {
      if (run.spec.port === undefined && run.spec.hosts === undefined) continue;
      const backends = this.replicasOf(appKey(run.env, run.app))
        .filter((r) => r.ready && !r.draining && r.state === 'running')
        .map((r) => ({ id: r.id, url: `http://127.0.0.1:${r.port}`, version: r.spec.version, group: groupOf(r.template) }));
      const split = this.traffic.get(appKey(run.env, run.app));
      // Host-routed apps (app.env.localhost) share the port with its default route.
      const { port, host, hosts, tls } = run.spec;
      routes.push({
        key: appKey(run.env, run.app),
        ...(port !== undefined ? { port } : {}),
        ...(host ? { host } : {}),
        ...(hosts ? { hosts } : {}),
        ...(tls ? { tls: tls.hstsMaxAgeSeconds === undefined ? {} : { hstsMaxAgeSeconds: tls.hstsMaxAgeSeconds } } : {}),
        backends,
        ...(split ? { split } : {}),
      });
    }
    return { routes };
  }

  // ---- replica sets, for progressive rollouts (blue/green, canary: see progressive.ts) ----

  /**
   * Makes `spec` the app's template while the previous set keeps running and serving: the healer leaves both sets
   * alone until `settle`. New requests stay on the previous set (but `weight` percent of them, for a rollout resumed
   * after a restart, whose replicas of `spec` are already there) until `setTraffic` says otherwise.
   */
  async beginSet(spec: DesiredApp, release: ReleaseRef, revision: string, stickyCookie?: string, weight = 0): Promise<{ run: AppRun; previous: AppRun | undefined }> {
    const key = appKey(spec.env, spec.name);
    const previous = this.apps.get(key);
    const run: AppRun = { env: spec.env, app: spec.name, spec, template: templateHash(spec), release, revision, rollingOut: true };
    if (previous) await this.setTraffic(key, { weights: { [groupOf(previous.template)]: 100 - weight, [groupOf(run.template)]: weight }, ...(stickyCookie ? { stickyCookie } : {}) });
    this.apps.set(key, run);
    return { run, previous };
  }

  /** Starts or stops replicas of `run`'s set until `n` are present. */
  async scaleSet(run: AppRun, n: number): Promise<void> {
    const mine = this.setOf(run);
    for (let i = mine.length; i < n; i++) await this.startNew(run);
    const extra = mine.sort((a, b) => Number(a.ready) - Number(b.ready)).slice(0, Math.max(0, mine.length - n));
    await Promise.all(extra.map((r) => this.stopReplica(r)));
  }

  /** Resolves true once `n` replicas of the set are ready; false at the deadline or on abort. */
  waitSetReady(run: AppRun, n: number, deadline: number, signal?: AbortSignal): Promise<boolean> {
    const key = appKey(run.env, run.app);
    const done = () => this.setOf(run).filter((r) => r.ready).length >= n;
    return this.waitUntil(done, deadline, (e) => e.type === 'replica.ready' && appKey(e.env, e.app) === key, signal);
  }

  /** Ports of the set's ready replicas (for analysis checks). */
  readyPortsOf(run: AppRun): number[] {
    return this.setOf(run).filter((r) => r.ready && !r.draining).map((r) => r.port);
  }

  /** Drains and stops every replica of the set. */
  async stopSet(run: SetRef): Promise<void> {
    await Promise.all(this.setOf(run).map((r) => this.stopReplica(r)));
  }

  /** Drains and stops every replica of the app outside `set` (one version alone serves afterwards). */
  async stopAllBut(set: SetRef): Promise<void> {
    const others = this.replicasOf(appKey(set.env, set.app)).filter(
      (r) => !(r.template === set.template && r.release.id === set.release.id) && r.state !== 'stopping' && r.state !== 'stopped',
    );
    await Promise.all(others.map((r) => this.stopReplica(r)));
  }

  /** `run` is the app again, healed as usual; weights are dropped. */
  async settle(run: AppRun): Promise<void> {
    run.rollingOut = false;
    this.apps.set(appKey(run.env, run.app), run);
    this.traffic.delete(appKey(run.env, run.app));
    this.requestPublish();
    await this.publishing;
  }

  /** Sets how the proxy shares new requests between the app's sets and waits until the proxy has it. */
  async setTraffic(key: string, split: TrafficSplit | undefined): Promise<void> {
    if (split) this.traffic.set(key, split);
    else this.traffic.delete(key);
    this.requestPublish();
    await this.publishing;
  }

  private setOf(run: SetRef): Replica[] {
    return this.replicasOf(appKey(run.env, run.app)).filter(
      (r) => r.template === run.template && r.release.id === run.release.id && r.state !== 'stopping' && r.state !== 'stopped',
    );
  }

  async lastLogLines(env: string, app: string, n = 20): Promise<string[]> {
    const reps = this.replicasOf(appKey(env, app));
    const r = reps.find((x) => x.failures > 0 || !x.ready) ?? reps[0];
    return r ? tailLines(r.logPath, n).catch(() => []) : [];
  }
}
