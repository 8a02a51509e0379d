/**
 * Rollouts across engine restarts. The engine may stop at any time (SIGTERM, SIGKILL, an upgrade) while both
 * replica sets and the proxy keep running; each rollout's state is written to the store (at every step transition
 * of a progressive one; at the start of a rolling update, which replaces replicas one by one), and the next engine
 * reads it back: the supervisor adopts the new set with its own spec and hands the proxy the same weights
 * (`Supervisor.start`), and the app's next apply resumes the rollout (progressive.ts; a rolling update goes on
 * replacing the remaining old replicas), or aborts it when the app no longer goes to that version: every replica
 * back on the previous version, so that one version alone serves.
 */
import type { DesiredApp } from '../../core/model.js';
import { appKey } from '../../core/types.js';
import type { EventBus } from '../../core/events.js';
import type { RolloutCheckpoint } from '../../rollout/runner.js';
import { planDigest, planRollout } from '../../rollout/steps.js';
import type { Store } from '../../store/store.js';
import type { TrafficSplit } from './proxy/protocol.js';
import { templateHash } from './spec-hash.js';
import { groupOf, type AppRun, type ReleaseRef, type Supervisor } from './supervisor.js';

export interface RolloutRecord {
  env: string;
  app: string;
  /** The revision the rollout runs for. */
  revision: string;
  strategy: 'blueGreen' | 'canary' | 'rolling';
  /** Versions of the stable and the new set. */
  from: string;
  to: string;
  /** Digest of the planned steps: only the same steps resume at the same index ('' for a rolling update). */
  plan: string;
  /** The set serving before the rollout (the app's inventory spec). */
  stable: { template: string };
  /** The new set: its spec (an adopted replica runs with it) and release. */
  canary: { template: string; releaseId: string; spec: DesiredApp };
  /** The weights the proxy applies between the two sets (none for a rolling update: every ready replica serves). */
  split: TrafficSplit;
  checkpoint: RolloutCheckpoint;
  updatedAt: string;
}

/** The records in the store, cached: `observe` asks many times a second whether an app has one. */
export class RolloutStates {
  private readonly byApp = new Map<string, RolloutRecord>();

  constructor(private readonly store: Store) {
    for (const row of store.rollouts()) this.byApp.set(appKey(row.env, row.app), row.state as RolloutRecord);
  }

  all(): RolloutRecord[] {
    return [...this.byApp.values()];
  }

  get(env: string, app: string): RolloutRecord | undefined {
    return this.byApp.get(appKey(env, app));
  }

  save(r: Omit<RolloutRecord, 'updatedAt'>): void {
    const record = { ...r, updatedAt: new Date().toISOString() };
    this.store.putRollout(r.env, r.app, record);
    this.byApp.set(appKey(r.env, r.app), record);
  }

  forget(env: string, app: string): void {
    if (!this.byApp.delete(appKey(env, app))) return;
    this.store.deleteRollout(env, app);
  }
}

/** The proxy's weights between the stable and the new set: `weight` percent of new requests to the new one. */
/**
 * The record of a rolling update from `previous` to `spec`, saved before its first replica is replaced: a rolling
 * update has no steps and no weights, only the two sets.
 */
export function rollingRecord(previous: AppRun, spec: DesiredApp, release: ReleaseRef, revision: string): Omit<RolloutRecord, 'updatedAt'> {
  return {
    env: spec.env,
    app: spec.name,
    revision,
    strategy: 'rolling',
    from: previous.spec.version,
    to: spec.version,
    plan: '',
    stable: { template: previous.template },
    canary: { template: templateHash(spec), releaseId: release.id, spec },
    split: { weights: {} },
    checkpoint: { step: 0, weight: 0, full: false },
  };
}

export function splitOf(stableTemplate: string, newTemplate: string, weight: number, stickyCookie: string | undefined): TrafficSplit {
  return { weights: { [groupOf(stableTemplate)]: 100 - weight, [groupOf(newTemplate)]: weight }, ...(stickyCookie ? { stickyCookie } : {}) };
}

export interface TakeOverDeps {
  supervisor: Supervisor;
  bus: EventBus;
  states: RolloutStates;
}

/**
 * A rollout the engine stopped in the middle of is resumed by an apply of the same template, release and steps:
 * its record is returned, to pass on to `progressiveRollout` as `resume`. Any other apply first aborts it, as a
 * newer revision aborts a rollout under way: all traffic back on the stable set, the new set stopped.
 */
export async function takeOverInterrupted(d: TakeOverDeps, spec: DesiredApp, release: ReleaseRef, revision: string, restartAll: boolean): Promise<RolloutRecord | undefined> {
  const saved = d.states.get(spec.env, spec.name);
  if (!saved) return undefined;
  if (saved.strategy === 'rolling') {
    // Goes on replacing the old replicas (Supervisor.rollout counts those of the new set already there).
    const sameRolling =
      !restartAll &&
      (spec.rollout?.strategy ?? 'rolling') === 'rolling' &&
      d.supervisor.runOf(spec.env, spec.name)?.template === saved.stable.template &&
      templateHash(spec) === saved.canary.template &&
      release.id === saved.canary.releaseId;
    if (sameRolling) return saved;
    await abortInterrupted(d, saved, revision);
    return undefined;
  }
  const same =
    !restartAll &&
    saved.checkpoint.aborting === undefined &&
    spec.rollout !== undefined &&
    spec.rollout.strategy === saved.strategy &&
    d.supervisor.runOf(spec.env, spec.name)?.template === saved.stable.template &&
    templateHash(spec) === saved.canary.template &&
    release.id === saved.canary.releaseId &&
    planDigest(planRollout(spec.rollout, spec.replicas)) === saved.plan;
  if (same) return saved;
  await abortInterrupted(d, saved, revision);
  return undefined;
}

async function abortInterrupted(d: TakeOverDeps, saved: RolloutRecord, revision: string): Promise<void> {
  const sup = d.supervisor;
  const { env, app } = saved;
  const rolling = saved.strategy === 'rolling';
  const reason =
    saved.checkpoint.aborting ??
    (rolling
      ? `rolling update to ${saved.to} cancelled: superseded by revision ${revision.slice(0, 7)}; every replica back on ${saved.from}`
      : `rollout of ${saved.to} cancelled: superseded by revision ${revision.slice(0, 7)}; rollout aborted, all traffic back on ${saved.from}`);
  const split = rolling ? saved.split : splitOf(saved.stable.template, saved.canary.template, 0, saved.split.stickyCookie);
  // Recorded first: an engine stopped during the abort finishes it next time.
  d.states.save({ ...saved, split, checkpoint: { ...saved.checkpoint, weight: 0, aborting: reason } });
  if (!rolling) await sup.setTraffic(appKey(env, app), split);
  const live = sup.runOf(env, app);
  if (rolling && live && live.template === saved.stable.template) {
    // The old version back to its full count before the new one's replicas go: capacity never drops.
    live.rollingOut = true;
    await sup.scaleSet(live, live.spec.replicas);
    await sup.waitSetReady(live, live.spec.replicas, Date.now() + live.spec.progressDeadlineSeconds * 1000);
  }
  if (live?.template !== saved.canary.template) await sup.stopSet({ env, app, template: saved.canary.template, release: { id: saved.canary.releaseId } });
  if (live) await sup.settle(live);
  d.bus.publish({ type: 'rollout.aborted', env, app, revision: saved.revision, reason });
  d.bus.publish({ type: 'app.rolledBack', env, app, revision: saved.revision, message: reason });
  d.states.forget(env, app);
}
