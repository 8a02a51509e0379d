import type { ChildProcess } from 'node:child_process';
import { closeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { DesiredApp, Probe } from '../../core/model.js';
import { appKey, type HealthCode } from '../../core/types.js';
import type { EventBus } from '../../core/events.js';
import type { Logger } from '../../log.js';
import type { ReplicaRow, Store } from '../../store/store.js';
import { openLogFd, tailLines } from './logs.js';
import { runProbe, type ProbeResult } from './probes.js';
import { baseEnv, isSameProcess, processStartTime, signalGroup, spawnDetached } from './process.js';
import type { TrafficSplit } from './proxy/protocol.js';
import type { RolloutRecord } from './rollout-state.js';
import { revertToStable } from './revert.js';
import { templateHash } from './spec-hash.js';
import { adoptReplicaCgroup, detectCgroups, limitsStatus, prepareReplicaCgroup, removeReplicaCgroup, wasOomKilled, type CgroupSystem, type LimitsStatus, type ReplicaCgroup } from './cgroups.js';
import { dataDirOf, identityEnv, policyFromEnv, prepareDataDir, runAsFor, type IsolationPolicy } from './isolation.js';
import type { RunAs } from './users.js';
import { formatBytes } from '../../render/schema-isolation.js';
import { scopeCommand } from './systemd-scope.js';

/** Where the supervisor sends routing changes: the proxy's control channel. */
export interface RouteSink {
  publish(table: RouteTable): Promise<void>;
  drain(backendIds: string[], timeoutMs: number): Promise<void>;
}

export interface RouteTable {
  routes: {
    key: string;
    port?: number;
    host?: string;
    /** Public names on the proxy's web ports, and whether they want HTTPS (see proxy/protocol.ts). */
    hosts?: string[];
    tls?: { hstsMaxAgeSeconds?: number };
    backends: { id: string; url: string; version: string; group?: string }[];
    split?: TrafficSplit;
  }[];
}

export interface ReleaseRef {
  id: string;
  dir: string;
  hash: string;
}

type ReplicaState = 'starting' | 'running' | 'backoff' | 'stopping' | 'stopped';

interface Replica {
  id: string;
  env: string;
  app: string;
  spec: DesiredApp;
  template: string;
  release: ReleaseRef;
  port: number;
  logPath: string;
  pid: number;
  startTime: string;
  child?: ChildProcess;
  state: ReplicaState;
  ready: boolean;
  /** Taken out of the proxy's rotation ahead of a stop. */
  draining: boolean;
  everReady: boolean;
  restarts: number;
  /** Crashes since the replica was last healthy for `backoffResetMs`. */
  failures: number;
  /** When it was last restarted at once after being killed while serving (the last minute's). */
  promptRestarts: number[];
  readySince?: number;
  startedAt: number;
  lastExit?: string;
  lastProbe?: string;
  /** The last lines the replica wrote before it exited, for crash-loop messages. */
  lastLogs: string[];
  /**
   * The environment the process runs with, secret values included (memory only, never stored or shown). Exec
   * probes get it too; an adopted replica's is made again on its first exec probe.
   */
  runEnv?: Record<string, string>;
  /** Warned that its exec probes run without secret env vars (they could not be decrypted). */
  probeWithoutSecretsWarned?: boolean;
  livenessFailures: number;
  readinessFailures: number;
  readinessSuccesses: number;
  timers: Set<NodeJS.Timeout>;
  exited?: () => void;
  /** The user it runs as (absent: the engine's); resolved at each start. */
  runAs?: RunAs;
  /** Its cgroups (absent when no limit uses one) and what enforces each limit. */
  cgroup?: ReplicaCgroup;
  limits: LimitsStatus;
  /** Why it last ended, when the system says (`OOMKilled`). */
  reason?: 'OOMKilled';
}

export interface AppRun {
  env: string;
  app: string;
  spec: DesiredApp;
  template: string;
  release: ReleaseRef;
  revision: string;
  rollingOut: boolean;
  /**
   * Why its rollout gave up while its replicas stay (a first deploy has nothing to roll back to; a scale): the app
   * is Degraded with this reason until every replica is ready.
   */
  stalled?: string;
}

export interface SupervisorOptions {
  stateDir: string;
  store: Store;
  bus: EventBus;
  log: Logger;
  routes: RouteSink;
  /** How often adopted processes are checked for life, and missing or extra replicas healed. Default 200 ms. */
  tickMs?: number;
  /** Readiness is probed this often until a replica is first ready (a startup probe). Default 100 ms. */
  startupProbeMs?: number;
  /** Secret env vars of a replica about to start (plaintext: kept in memory, never stored). */
  secretEnv?: (spec: DesiredApp, template: string) => Promise<Record<string, string>>;
  /** Who apps without `user:` run as when the engine is root. Default: from KEELSON_ALLOW_ROOT_APPS / KEELSON_DEFAULT_USER. */
  isolation?: IsolationPolicy;
  /** The machine's cgroups (default: detected on first use). */
  cgroups?: () => Promise<CgroupSystem>;
}

export interface ReplicaStatus {
  id: string;
  pid: number;
  port: number;
  version: string;
  release: string;
  state: ReplicaState;
  ready: boolean;
  restarts: number;
  startedAt: string;
  logPath: string;
  message?: string;
  /** Why it last ended, when the system says: `OOMKilled`. */
  reason?: 'OOMKilled';
  /** The system user and group it runs as; absent: the engine's own. */
  user?: { name: string; group: string; uid: number; gid: number };
  /** Each declared limit with what enforces it here (`cgroup-v1`, `cgroup-v2`, `rlimit`, `none` with a reason). */
  limits?: LimitsStatus;
  /** Its cgroup directories, when limits use cgroups. */
  cgroups?: string[];
  /** Its systemd scope unit, when systemd makes its cgroup. */
  scope?: string;
}

export interface AppStatus {
  env: string;
  app: string;
  spec: DesiredApp;
  template: string;
  revision: string;
  version: string;
  release: ReleaseRef;
  health: HealthCode;
  message: string;
  replicas: { desired: number; ready: number; total: number; updated: number };
  instances: ReplicaStatus[];
}

export type RolloutResult =
  | { ok: true; message: string }
  /** `interrupted`: the engine stopped mid-rollout; nothing was rolled back (see rollout-state.ts). */
  | { ok: false; message: string; rolledBack: boolean; logTail: string[]; interrupted?: boolean };

/** One replica set of an app: its replicas have this template and release. */
export type SetRef = Pick<AppRun, 'env' | 'app' | 'template'> & { release: Pick<ReleaseRef, 'id'> };

const backoffBaseMs = 1000;
const backoffCapMs = 5 * 60_000;
const backoffResetMs = 10 * 60_000;
const maxPromptRestarts = 30;
const externalSignals = new Set<string>(['SIGKILL', 'SIGTERM', 'SIGINT', 'SIGHUP']);

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

  constructor(private readonly o: SupervisorOptions) {
    this.tickMs = o.tickMs ?? 200;
    this.startupProbeMs = o.startupProbeMs ?? 100;
    this.policy = o.isolation ?? policyFromEnv();
  }

  /** The machine's cgroups, found on first use. */
  cgroups(): Promise<CgroupSystem> {
    this.cgroupSystem ??= (this.o.cgroups ?? detectCgroups)();
    return this.cgroupSystem;
  }

  /**
   * Re-adopts the replicas recorded in the store: the same pid and start time, or it is restarted. The new set of a
   * rollout the engine stopped in the middle of (`interrupted`) keeps its own spec, and the proxy its weights.
   */
  async start(interrupted: RolloutRecord[] = []): Promise<void> {
    const inventory = new Map(this.o.store.inventory().map((r) => [appKey(r.env, r.app), r]));
    const rollouts = new Map(interrupted.map((r) => [appKey(r.env, r.app), r]));
    const rows = this.o.store.replicas();
    for (const row of rows) {
      const inv = inventory.get(appKey(row.env, row.app));
      if (!inv) {
        // Recorded but no longer in the inventory: a prune that did not finish. Stop it.
        if (isSameProcess(row.pid, row.startTime)) signalGroup(row.pid, 'SIGTERM');
        this.o.store.deleteReplica(row.id);
        continue;
      }
      const spec = inv.spec as DesiredApp;
      const key = appKey(row.env, row.app);
      if (!this.apps.has(key)) {
        // The app's release is that of its replicas of the inventory's spec (a rolling update the engine stopped in
        // the middle of leaves replicas of the new release too).
        const template = templateHash(spec);
        const own = rows.find((x) => x.env === row.env && x.app === row.app && x.specHash === template) ?? row;
        this.apps.set(key, {
          env: row.env,
          app: row.app,
          spec,
          template,
          release: { id: own.releaseId, dir: own.releaseDir, hash: own.releaseHash },
          revision: inv.revision,
          rollingOut: false,
        });
      }
      const run = this.apps.get(key)!;
      // The replica keeps the spec it was started with; a template mismatch is for the next reconcile to roll.
      const interruptedRollout = rollouts.get(key);
      const replicaSpec = row.specHash === run.template ? run.spec : interruptedRollout && row.specHash === interruptedRollout.template ? interruptedRollout.detail.spec : { ...run.spec, version: row.version };
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
        this.scheduleProbes(r, 0);
      } else {
        this.o.bus.publish({ type: 'drift.detected', env: r.env, app: r.app, kind: 'process-exited', message: `replica ${r.id} (pid ${row.pid}) is gone` });
        void this.launch(r);
      }
    }
    for (const [key, r] of rollouts) if (r.strategy !== 'rolling' && this.apps.get(key)?.template === r.detail.stable) this.traffic.set(key, r.detail.split);
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
   * Rolls `spec` out: start a new replica, wait until it is ready, put it into rotation, drain and stop an old one,
   * repeat. If a new replica is not ready within the deadline the previous spec is restored and the result says why.
   */
  /**
   * `onReplace`: called once, before the first replica is replaced (to record the rolling update, rollout-state.ts).
   * `interrupt` (the engine stops): the update stops where it is, nothing rolled back, for the next engine to finish
   * or revert (outcome `interrupted`).
   */
  async rollout(
    spec: DesiredApp,
    release: ReleaseRef,
    revision: string,
    opts: { restartAll?: boolean; signal?: AbortSignal; interrupt?: AbortSignal; onReplace?: (previous: AppRun) => void } = {},
  ): Promise<RolloutResult> {
    const key = appKey(spec.env, spec.name);
    const template = templateHash(spec);
    const previous = this.apps.get(key);
    const run: AppRun = { env: spec.env, app: spec.name, spec, template, release, revision, rollingOut: true };
    if (previous && !opts.restartAll && previous.template === template && previous.release.id === release.id) {
      // Only replicas or port changed (or a manual retry of the same spec): scale in place and wait for readiness.
      const scaled = previous.spec.replicas !== spec.replicas;
      previous.spec = spec;
      previous.revision = revision;
      previous.stalled = undefined;
      // Replicas waiting out a crash-loop backoff (up to 5 min) start again now: this attempt gets its whole deadline.
      for (const r of this.replicasOf(key).filter((x) => x.state === 'backoff' && x.template === template)) {
        this.clearTimers(r);
        void this.launch(r);
      }
      this.scaleTo(previous);
      this.requestPublish();
      if (await this.waitAppReady(previous, Date.now() + spec.progressDeadlineSeconds * 1000)) {
        return { ok: true, message: scaled ? `scaled to ${spec.replicas}` : `${spec.replicas}/${spec.replicas} replicas ready` };
      }
      previous.stalled = this.notReadyMessage(previous);
      return { ok: false, message: previous.stalled, rolledBack: false, logTail: await this.lastLogLines(spec.env, spec.name) };
    }
    if (previous) opts.onReplace?.(previous);
    this.apps.set(key, run);
    const deadline = Date.now() + spec.progressDeadlineSeconds * 1000;
    const isNew = (r: Replica) => r.template === template && r.release.id === release.id && !opts.restartAll;
    const fresh: Replica[] = [];
    const waitSignal = opts.interrupt ? (opts.signal ? AbortSignal.any([opts.signal, opts.interrupt]) : opts.interrupt) : opts.signal;
    const interrupted = (): RolloutResult => ({ ok: false, message: `the engine stopped during the rolling update to ${spec.version}; the next engine finishes or reverts it`, rolledBack: false, logTail: [], interrupted: true });
    try {
      for (;;) {
        if (opts.interrupt?.aborted) return interrupted();
        const mine = this.replicasOf(key).filter((r) => r.state !== 'stopping' && r.state !== 'stopped');
        const current = mine.filter((r) => isNew(r) || fresh.includes(r));
        const old = mine.filter((r) => !current.includes(r));
        if (current.length > spec.replicas) {
          await this.stopReplica(current[current.length - 1]);
          continue;
        }
        if (current.length === spec.replicas && old.length === 0) break;
        if (current.length < spec.replicas) {
          const r = await this.startNew(run);
          fresh.push(r);
          if (!(await this.waitReady(r, deadline, waitSignal))) throw new NotReady(r);
          this.requestPublish();
          await this.publishing;
        }
        const oldOne = old.sort((a, b) => Number(a.ready) - Number(b.ready))[0];
        if (oldOne) await this.stopReplica(oldOne);
      }
    } catch (err) {
      if (!(err instanceof NotReady)) throw err;
      if (opts.interrupt?.aborted) return interrupted();
      const message = this.notReadyMessage(run, err.replica);
      const logTail = await tailLines(err.replica.logPath, 10).catch(() => []);
      if (!previous) {
        // Nothing to roll back to: the replicas stay and keep being restarted, like a Deployment past its deadline.
        run.rollingOut = false;
        run.stalled = message;
        this.scaleTo(run);
        return { ok: false, message, rolledBack: false, logTail };
      }
      // Roll back (revert.ts): the previous spec and release, whose replicas may have been partly replaced, back to
      // full size first; then every other replica goes, those of a rolling update an engine restart interrupted too.
      await revertToStable(this, previous);
      this.o.bus.publish({ type: 'app.rolledBack', env: spec.env, app: spec.name, revision, message });
      return { ok: false, message: `${message}; rolled back to ${previous.spec.version}`, rolledBack: true, logTail };
    }
    run.rollingOut = false;
    this.requestPublish();
    return { ok: true, message: previous ? `rolled out ${previous.spec.version} → ${spec.version}` : `started ${spec.version}` };
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
    const key = appKey(run.env, run.app);
    const mine = this.replicasOf(key).filter((r) => r.state !== 'stopped');
    const ready = mine.filter((r) => r.ready && !r.draining).length;
    const updated = mine.filter((r) => r.template === run.template && r.release.id === run.release.id).length;
    const { health, message } = this.healthOf(run, mine, ready, updated);
    return {
      env: run.env,
      app: run.app,
      spec: run.spec,
      template: run.template,
      revision: run.revision,
      version: run.spec.version,
      release: run.release,
      health,
      message,
      replicas: { desired: run.spec.replicas, ready, total: mine.length, updated },
      instances: mine.map((r) => ({
        id: r.id,
        pid: r.pid,
        port: r.port,
        version: r.spec.version,
        release: r.release.id,
        state: r.state,
        ready: r.ready,
        restarts: r.restarts,
        startedAt: new Date(r.startedAt).toISOString(),
        logPath: r.logPath,
        message: r.lastExit ?? r.lastProbe,
        ...(r.reason ? { reason: r.reason } : {}),
        ...(r.runAs ? { user: { name: r.runAs.user, group: r.runAs.group, uid: r.runAs.uid, gid: r.runAs.gid } } : {}),
        ...(Object.keys(r.limits).length ? { limits: r.limits } : {}),
        ...(r.cgroup?.dirs.length ? { cgroups: r.cgroup.dirs } : {}),
        ...(r.cgroup?.unit ? { scope: r.cgroup.unit } : {}),
      })),
    };
  }

  private healthOf(run: AppRun, mine: Replica[], ready: number, updated: number): { health: HealthCode; message: string } {
    const looping = mine.find((r) => r.failures >= 2 && !r.ready);
    if (looping) {
      const logs = looping.lastLogs.length ? `; last log lines:\n${looping.lastLogs.join('\n')}` : '';
      return { health: 'Degraded', message: `replica ${looping.id} is crash-looping (${looping.lastExit ?? 'exited'}; ${looping.restarts} restarts)${logs}` };
    }
    if (run.stalled && !run.rollingOut && ready < run.spec.replicas) return { health: 'Degraded', message: run.stalled };
    const unready = mine.find((r) => r.everReady && !r.ready && r.state === 'running');
    if (unready && ready < run.spec.replicas) {
      return { health: 'Degraded', message: `replica ${unready.id} is not ready: ${unready.lastProbe ?? 'probe failing'}` };
    }
    if (run.spec.replicas === 0) return { health: 'Healthy', message: 'scaled to zero' };
    if (mine.length === 0) return { health: 'Missing', message: 'no replica is running' };
    if (run.rollingOut || ready < run.spec.replicas || updated < mine.length) {
      return { health: 'Progressing', message: `${ready}/${run.spec.replicas} replicas ready` };
    }
    return { health: 'Healthy', message: `${ready}/${run.spec.replicas} replicas ready` };
  }

  private notReadyMessage(run: AppRun, r?: Replica): string {
    const rep = r ?? this.replicasOf(appKey(run.env, run.app)).find((x) => !x.ready);
    const why = rep ? rep.lastExit ?? rep.lastProbe ?? 'no readiness yet' : 'no replica';
    return `version ${run.spec.version} did not become ready within ${run.spec.progressDeadlineSeconds}s (${why})`;
  }

  private replicasOf(key: string): Replica[] {
    return [...(this.byApp.get(key) ?? [])];
  }

  private newReplica(env: string, app: string, spec: DesiredApp, template: string, release: ReleaseRef, port: number, id?: string, logPath?: string): Replica {
    const rid = id ?? `${app}-${randomBytes(3).toString('hex')}`;
    const r: Replica = {
      id: rid,
      env,
      app,
      spec,
      template,
      release,
      port,
      logPath: logPath ?? join(this.o.stateDir, 'logs', env, app, `${rid}.log`),
      pid: 0,
      startTime: '',
      state: 'starting',
      ready: false,
      draining: false,
      everReady: false,
      restarts: 0,
      failures: 0,
      startedAt: Date.now(),
      livenessFailures: 0,
      readinessFailures: 0,
      readinessSuccesses: 0,
      lastLogs: [],
      promptRestarts: [],
      timers: new Set(),
      limits: {},
    };
    this.replicas.set(rid, r);
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
      const openFiles = r.limits.openFiles?.enforcement === 'rlimit' ? r.spec.resources?.openFiles : undefined;
      const ids = r.runAs ? { uid: r.runAs.uid, gid: r.runAs.gid } : undefined;
      const { child, pid, startTime } = await spawnDetached(
        r.cgroup?.unit
          ? // systemd makes the cgroup and the wrapper takes on the user: systemd-run itself runs as the engine.
            { command: scopeCommand(r.cgroup.unit, r.spec.resources ?? {}, r.spec.command, ids), cwd: r.release.dir, env, logFd: fd }
          : {
              command: r.spec.command,
              cwd: r.release.dir,
              env,
              logFd: fd,
              ...ids,
              confine: { cgroupProcs: r.cgroup?.procs ?? [], ...(openFiles !== undefined ? { openFiles } : {}) },
            },
      );
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
      this.o.store.putReplica(this.rowOf(r));
      this.o.bus.publish({ type: 'replica.started', env: r.env, app: r.app, replica: r.id, pid, version: r.spec.version });
      this.scheduleProbes(r, r.spec.readiness?.initialDelaySeconds ? r.spec.readiness.initialDelaySeconds * 1000 : 0);
    } catch (err) {
      r.lastExit = (err as Error).message;
      this.onExit(r, 0, null, null);
    } finally {
      closeSync(fd);
    }
  }

  private rowOf(r: Replica): ReplicaRow {
    return {
      id: r.id,
      env: r.env,
      app: r.app,
      pid: r.pid,
      startTime: r.startTime,
      port: r.port,
      releaseId: r.release.id,
      releaseDir: r.release.dir,
      releaseHash: r.release.hash,
      version: r.spec.version,
      specHash: r.template,
      logPath: r.logPath,
      startedAt: r.startedAt,
    };
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
    if (r.readySince && Date.now() - r.readySince >= backoffResetMs) r.failures = 0;
    // A serving replica killed from outside (kill -9, OOM, chaos) proved it starts fine: restart it at once, up to
    // `maxPromptRestarts` a minute. Everything else (crashes, exits before ready) backs off 1 s doubling to 5 min.
    const now = Date.now();
    r.promptRestarts = r.promptRestarts.filter((t) => now - t < 60_000);
    // An OOM kill is the app's own doing: it backs off like a crash (Kubernetes' CrashLoopBackOff).
    const killed = !oom && (signal ? externalSignals.has(signal) : code === null);
    let delayMs = 0;
    if (wasReady && killed && r.promptRestarts.length < maxPromptRestarts) {
      r.promptRestarts.push(now);
    } else {
      r.failures++;
      delayMs = r.failures <= 1 ? 0 : Math.min(backoffBaseMs * 2 ** (r.failures - 2), backoffCapMs);
    }
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

  private readinessProbe(r: Replica): Probe | undefined {
    if (r.spec.readiness) return r.spec.readiness;
    // Without a declared probe, an app with a port is ready once it accepts connections.
    if (r.spec.port !== undefined) {
      return { tcp: {}, initialDelaySeconds: 0, periodSeconds: 10, timeoutSeconds: 1, failureThreshold: 3, successThreshold: 1 };
    }
    return undefined;
  }

  private scheduleProbes(r: Replica, delayMs: number): void {
    const readiness = this.readinessProbe(r);
    // A detached supervisor (the engine stopped or restarted) leaves the replicas to the next one: a probe still
    // under way when it detached neither acts on its result nor schedules another.
    const supervising = () => !this.closed && r.state === 'running';
    const probeReadiness = async () => {
      if (!supervising()) return;
      if (!readiness) {
        this.setReady(r, true);
        return;
      }
      const res = await this.probe(r, readiness);
      if (!supervising()) return;
      r.lastProbe = res.ok ? undefined : `readiness: ${res.message}`;
      if (res.ok) {
        r.readinessFailures = 0;
        if (++r.readinessSuccesses >= readiness.successThreshold) this.setReady(r, true);
      } else {
        r.readinessSuccesses = 0;
        // Until first ready the replica is simply not ready yet; afterwards it takes failureThreshold misses.
        if (!r.everReady || ++r.readinessFailures >= readiness.failureThreshold) this.setReady(r, false);
      }
      // A starting replica is probed every 20 ms for its first 2 s (most apps are up by then), then every 100 ms.
      const startupMs = Date.now() - r.startedAt < 2000 ? Math.min(20, this.startupProbeMs) : this.startupProbeMs;
      this.after(r, r.everReady ? readiness.periodSeconds * 1000 : startupMs, () => void probeReadiness());
    };
    const liveness = r.spec.liveness;
    const probeLiveness = async () => {
      if (!supervising() || !liveness) return;
      if (r.everReady) {
        const res = await this.probe(r, liveness);
        if (!supervising()) return;
        if (res.ok) r.livenessFailures = 0;
        else if (++r.livenessFailures >= liveness.failureThreshold) {
          r.lastExit = `liveness probe failed ${r.livenessFailures} times: ${res.message}`;
          this.o.log.warn({ env: r.env, app: r.app, replica: r.id, reason: res.message }, 'liveness failed');
          signalGroup(r.pid, 'SIGKILL');
          return;
        }
      }
      this.after(r, liveness.periodSeconds * 1000, () => void probeLiveness());
    };
    this.after(r, delayMs, () => void probeReadiness());
    if (liveness) this.after(r, delayMs + (liveness.initialDelaySeconds ?? 0) * 1000, () => void probeLiveness());
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
    if (prevState === 'running' || prevState === 'starting') await this.terminate(r);
    if (r.cgroup) await removeReplicaCgroup(await this.cgroups(), r.env, r.app, r.id).catch(() => undefined);
    r.state = 'stopped';
    this.replicas.delete(r.id);
    this.byApp.get(appKey(r.env, r.app))?.delete(r);
    this.o.store.deleteReplica(r.id);
  }

  private terminate(r: Replica): Promise<void> {
    if (!r.pid || !isSameProcess(r.pid, r.startTime)) return Promise.resolve();
    return new Promise((resolve) => {
      const graceMs = r.spec.terminationGracePeriodSeconds * 1000;
      let poll: NodeJS.Timeout | undefined;
      const kill = setTimeout(() => signalGroup(r.pid, 'SIGKILL'), graceMs);
      const done = () => {
        clearTimeout(kill);
        if (poll) clearInterval(poll);
        r.exited = undefined;
        resolve();
      };
      r.exited = done;
      // Adopted processes are not our children: no exit event, so watch /proc.
      poll = setInterval(() => {
        if (processStartTime(r.pid) !== r.startTime) done();
      }, 50);
      signalGroup(r.pid, 'SIGTERM');
    });
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

class NotReady extends Error {
  constructor(readonly replica: Replica) {
    super('replica not ready');
  }
}

/** The proxy's backend group of a replica set: its template hash. */
export function groupOf(template: string): string {
  return template.slice(0, 12);
}

/** A free loopback port for a replica's PORT. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}
