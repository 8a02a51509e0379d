/**
 * The rolling update of the local target (strategy `rolling`, and every update that is not progressive): start a new
 * replica, wait until it is ready, put it into rotation, drain and stop an old one, repeat; a new replica not ready
 * in time reverts the app to its previous set (revert.ts). The supervisor is the host: it owns the replicas, the
 * healer and the route table.
 */
import type { DesiredApp } from '../../core/model.js';
import type { EventBus } from '../../core/events.js';
import { appKey } from '../../core/types.js';
import { tailLines } from './logs.js';
import { templateHash } from './spec-hash.js';
import type { AppRun, ReleaseRef, Replica, RolloutResult } from './supervisor-types.js';

/** What a rolling update needs of the supervisor. */
export interface RollingHost {
  /** The app runs by `env/app`: the current set of each app. */
  apps: Map<string, AppRun>;
  bus: EventBus;
  replicasOf(key: string): Replica[];
  clearTimers(r: Replica): void;
  launch(r: Replica): Promise<void>;
  /** Starts or stops replicas of the set until it has its count (the healer's step). */
  scaleTo(run: AppRun): void;
  requestPublish(): void;
  /** Resolves once the route table publish under way (if any) is done. */
  published(): Promise<void>;
  waitReady(r: Replica, deadline: number, signal?: AbortSignal): Promise<boolean>;
  waitAppReady(run: AppRun, deadline: number): Promise<boolean>;
  notReadyMessage(run: AppRun, r?: Replica): string;
  lastLogLines(env: string, app: string): Promise<string[]>;
  startNew(run: AppRun): Promise<Replica>;
  stopReplica(r: Replica): Promise<void>;
  /** Puts the app back on `previous` alone (revertToStable). */
  revert(previous: AppRun): Promise<unknown>;
}

export interface RollingOptions {
  /** Replace every replica, also those already of this spec and release (a forced restart, a modified release). */
  restartAll?: boolean;
  /** Aborted by a newer revision: waits give up, and the update reverts. */
  signal?: AbortSignal;
  /** Aborted when the engine stops: the update stops where it is, nothing rolled back (outcome `interrupted`). */
  interrupt?: AbortSignal;
  /** Called once, before the first replica is replaced (to record the rolling update, rollout-state.ts). */
  onReplace?: (previous: AppRun) => void;
}

/**
 * Rolls `spec` out: start a new replica, wait until it is ready, put it into rotation, drain and stop an old one,
 * repeat. If a new replica is not ready within the deadline the previous spec is restored and the result says why.
 */
export async function rollingUpdate(
  host: RollingHost,
  spec: DesiredApp,
  release: ReleaseRef,
  revision: string,
  opts: RollingOptions = {},
): Promise<RolloutResult> {
  const key = appKey(spec.env, spec.name);
  const template = templateHash(spec);
  const previous = host.apps.get(key);
  const run: AppRun = { env: spec.env, app: spec.name, spec, template, release, revision, rollingOut: true };
  if (previous && !opts.restartAll && previous.template === template && previous.release.id === release.id) {
    // Only replicas or port changed (or a manual retry of the same spec): scale in place and wait for readiness.
    const scaled = previous.spec.replicas !== spec.replicas;
    previous.spec = spec;
    previous.revision = revision;
    previous.stalled = undefined;
    // Replicas waiting out a crash-loop backoff (up to 5 min) start again now: this attempt gets its whole deadline.
    for (const r of host.replicasOf(key).filter((x) => x.state === 'backoff' && x.template === template)) {
      host.clearTimers(r);
      void host.launch(r);
    }
    host.scaleTo(previous);
    host.requestPublish();
    if (await host.waitAppReady(previous, Date.now() + spec.progressDeadlineSeconds * 1000)) {
      return { ok: true, message: scaled ? `scaled to ${spec.replicas}` : `${spec.replicas}/${spec.replicas} replicas ready` };
    }
    previous.stalled = host.notReadyMessage(previous);
    return { ok: false, message: previous.stalled, rolledBack: false, logTail: await host.lastLogLines(spec.env, spec.name) };
  }
  if (previous) opts.onReplace?.(previous);
  host.apps.set(key, run);
  const deadline = Date.now() + spec.progressDeadlineSeconds * 1000;
  const isNew = (r: Replica) => r.template === template && r.release.id === release.id && !opts.restartAll;
  const fresh: Replica[] = [];
  const waitSignal = opts.interrupt ? (opts.signal ? AbortSignal.any([opts.signal, opts.interrupt]) : opts.interrupt) : opts.signal;
  const interrupted = (): RolloutResult => ({ ok: false, message: `the engine stopped during the rolling update to ${spec.version}; the next engine finishes or reverts it`, rolledBack: false, logTail: [], interrupted: true });
  try {
    for (;;) {
      if (opts.interrupt?.aborted) return interrupted();
      const mine = host.replicasOf(key).filter((r) => r.state !== 'stopping' && r.state !== 'stopped');
      const current = mine.filter((r) => isNew(r) || fresh.includes(r));
      const old = mine.filter((r) => !current.includes(r));
      if (current.length > spec.replicas) {
        await host.stopReplica(current[current.length - 1]);
        continue;
      }
      if (current.length === spec.replicas && old.length === 0) break;
      if (current.length < spec.replicas) {
        const r = await host.startNew(run);
        fresh.push(r);
        if (!(await host.waitReady(r, deadline, waitSignal))) throw new NotReady(r);
        host.requestPublish();
        await host.published();
      }
      const oldOne = old.sort((a, b) => Number(a.ready) - Number(b.ready))[0];
      if (oldOne) await host.stopReplica(oldOne);
    }
  } catch (err) {
    if (!(err instanceof NotReady)) throw err;
    if (opts.interrupt?.aborted) return interrupted();
    const message = host.notReadyMessage(run, err.replica);
    const logTail = await tailLines(err.replica.logPath, 10).catch(() => []);
    if (!previous) {
      // Nothing to roll back to: the replicas stay and keep being restarted, like a Deployment past its deadline.
      run.rollingOut = false;
      run.stalled = message;
      host.scaleTo(run);
      return { ok: false, message, rolledBack: false, logTail };
    }
    // Roll back (revert.ts): the previous spec and release, whose replicas may have been partly replaced, back to
    // full size first; then every other replica goes, those of a rolling update an engine restart interrupted too.
    await host.revert(previous);
    host.bus.publish({ type: 'app.rolledBack', env: spec.env, app: spec.name, revision, message });
    return { ok: false, message: `${message}; rolled back to ${previous.spec.version}`, rolledBack: true, logTail };
  }
  run.rollingOut = false;
  host.requestPublish();
  return { ok: true, message: previous ? `rolled out ${previous.spec.version} → ${spec.version}` : `started ${spec.version}` };
}

class NotReady extends Error {
  constructor(readonly replica: Replica) {
    super('replica not ready');
  }
}
