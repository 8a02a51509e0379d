/**
 * Rollouts across engine restarts. The engine may stop at any time (SIGTERM, SIGKILL, an upgrade) while both
 * replica sets and the proxy keep running; each rollout's checkpoint (the shared record, src/rollout/checkpoints.ts)
 * is written to the store (at every step transition of a progressive one; at the start of a rolling update, which
 * replaces replicas one by one), and the next engine reads it back: the supervisor adopts the new set with its own
 * spec and hands the proxy the same weights (`Supervisor.start`), and the app's next apply resumes the rollout
 * (progressive.ts; a rolling update goes on replacing the remaining old replicas), or aborts it when the app no
 * longer goes to that version: every replica back on the previous version, so that one version alone serves.
 */
import type { DesiredApp } from '../../core/model.js';
import type { EventBus } from '../../core/events.js';
import { RolloutCheckpoints, type CheckpointStrategy, type RolloutCheckpointRecord } from '../../rollout/checkpoints.js';
import type { RolloutCheckpoint } from '../../rollout/runner.js';
import { planDigest, planRollout } from '../../rollout/steps.js';
import type { Store } from '../../store/store.js';
import type { TrafficSplit } from './proxy/protocol.js';
import { revertToStable } from './revert.js';
import { templateHash } from './spec-hash.js';
import { groupOf, type AppRun, type ReleaseRef, type Supervisor } from './supervisor.js';

/** What only the local target needs to resume a rollout (the record's `detail`). */
export interface LocalRolloutDetail {
  /** The template of the set serving before the rollout (the app's inventory spec). */
  stable: string;
  /** The new set's release; its spec is the one an adopted replica of the new set runs with. */
  releaseId: string;
  /**
   * The stable set's release: what a restarted engine brings the stable set back from when none of its replicas is
   * left (a rolling update that replaced every one, then was stopped). Absent in records of earlier versions.
   */
  stableRelease?: ReleaseRef;
  spec: DesiredApp;
  /** The weights the proxy applies between the two sets (none for a rolling update: every ready replica serves). */
  split: TrafficSplit;
}

/** A local rollout's checkpoint: the shared record, every field the local target writes present. */
export type RolloutRecord = RolloutCheckpointRecord<LocalRolloutDetail> & {
  strategy: CheckpointStrategy;
  revision: string;
  from: string;
  to: string;
  detail: LocalRolloutDetail;
};

export type RolloutRecordInput = Omit<RolloutRecord, 'target' | 'updatedAt'>;

function isLocalRecord(r: RolloutCheckpointRecord<LocalRolloutDetail>): r is RolloutRecord {
  return r.strategy !== undefined && r.detail !== undefined && typeof r.revision === 'string' && typeof r.from === 'string' && typeof r.to === 'string';
}

/**
 * The local target's rollout checkpoints, cached: `observe` asks many times a second whether an app has one. The
 * `rollouts` table of earlier versions is moved into the shared records at construction (an upgrade resumes too).
 */
export class LocalRolloutCheckpoints {
  private readonly records: RolloutCheckpoints<LocalRolloutDetail>;

  constructor(store: Store) {
    this.records = new RolloutCheckpoints<LocalRolloutDetail>(store, { target: 'local' });
    for (const row of store.rollouts()) {
      const old = fromLegacyRow(row.state);
      if (old) this.records.restore(old);
      store.deleteRollout(row.env, row.app);
    }
  }

  all(): RolloutRecord[] {
    return this.records.all().filter(isLocalRecord);
  }

  get(env: string, app: string): RolloutRecord | undefined {
    const r = this.records.get(env, app);
    return r && isLocalRecord(r) ? r : undefined;
  }

  save(r: RolloutRecordInput): void {
    this.records.save(r);
  }

  clear(env: string, app: string): void {
    this.records.clear(env, app);
  }
}

/** A row of the `rollouts` table (versions before the shared record) as the shared record. */
function fromLegacyRow(state: unknown): (RolloutRecordInput & { updatedAt?: string }) | undefined {
  const s = state as Partial<{
    env: string;
    app: string;
    revision: string;
    strategy: CheckpointStrategy;
    from: string;
    to: string;
    plan: string;
    stable: { template: string };
    canary: { template: string; releaseId: string; spec: DesiredApp };
    split: TrafficSplit;
    checkpoint: RolloutCheckpoint;
    updatedAt: string;
  }>;
  if (!s?.env || !s.app || !s.strategy || !s.stable || !s.canary || !s.checkpoint) return undefined;
  return {
    env: s.env,
    app: s.app,
    strategy: s.strategy,
    revision: s.revision ?? '',
    from: s.from ?? '',
    to: s.to ?? '',
    template: s.canary.template,
    plan: s.plan ?? '',
    checkpoint: s.checkpoint,
    detail: { stable: s.stable.template, releaseId: s.canary.releaseId, spec: s.canary.spec, split: s.split ?? { weights: {} } },
    ...(s.updatedAt ? { updatedAt: s.updatedAt } : {}),
  };
}

/**
 * The record of a rolling update from `previous` to `spec`, saved before its first replica is replaced: a rolling
 * update has no steps and no weights, only the two sets.
 */
export function rollingRecord(previous: AppRun, spec: DesiredApp, release: ReleaseRef, revision: string): RolloutRecordInput {
  return {
    env: spec.env,
    app: spec.name,
    revision,
    strategy: 'rolling',
    from: previous.spec.version,
    to: spec.version,
    template: templateHash(spec),
    plan: '',
    checkpoint: { step: 0, weight: 0, full: false },
    detail: { stable: previous.template, stableRelease: previous.release, releaseId: release.id, spec, split: { weights: {} } },
  };
}

/** The proxy's weights between the stable and the new set: `weight` percent of new requests to the new one. */
export function splitOf(stableTemplate: string, newTemplate: string, weight: number, stickyCookie: string | undefined): TrafficSplit {
  return { weights: { [groupOf(stableTemplate)]: 100 - weight, [groupOf(newTemplate)]: weight }, ...(stickyCookie ? { stickyCookie } : {}) };
}

/**
 * A rollout that finished here: its record stays, marked, until the engine has recorded the sync (`synced`), so that
 * an engine stopped in between comes back with the new set as the app (adoption.ts), not the one its record names.
 */
export function markFinished(states: LocalRolloutCheckpoints, env: string, app: string): void {
  const r = states.get(env, app);
  if (r && !r.checkpoint.finished) states.save({ ...r, checkpoint: { ...r.checkpoint, finished: true } });
}

export interface TakeOverDeps {
  supervisor: Supervisor;
  bus: EventBus;
  states: LocalRolloutCheckpoints;
}

/**
 * A rollout the engine stopped in the middle of is resumed by an apply of the same template, release and steps:
 * its record is returned, to pass on to `progressiveRollout` as `resume`. Any other apply first aborts it, as a
 * newer revision aborts a rollout under way: all traffic back on the stable set, the new set stopped.
 */
export async function takeOverInterrupted(d: TakeOverDeps, spec: DesiredApp, release: ReleaseRef, revision: string, restartAll: boolean): Promise<RolloutRecord | undefined> {
  const saved = d.states.get(spec.env, spec.name);
  if (!saved) return undefined;
  if (saved.checkpoint.finished) {
    // Done here, not yet recorded by the engine: the new set is the app (adoption.ts). An apply of that very spec
    // finishes the sync (the record goes once the engine recorded it); any other one is a new rollout from it.
    if (templateHash(spec) !== saved.template) d.states.clear(spec.env, spec.name);
    return undefined;
  }
  if (saved.strategy === 'rolling') {
    // Goes on replacing the old replicas (Supervisor.rollout counts those of the new set already there).
    const sameRolling =
      !restartAll &&
      (spec.rollout?.strategy ?? 'rolling') === 'rolling' &&
      d.supervisor.runOf(spec.env, spec.name)?.template === saved.detail.stable &&
      templateHash(spec) === saved.template &&
      release.id === saved.detail.releaseId;
    if (sameRolling) return saved;
    await abortInterrupted(d, saved, revision);
    return undefined;
  }
  const same =
    !restartAll &&
    saved.checkpoint.aborting === undefined &&
    spec.rollout !== undefined &&
    spec.rollout.strategy === saved.strategy &&
    d.supervisor.runOf(spec.env, spec.name)?.template === saved.detail.stable &&
    templateHash(spec) === saved.template &&
    release.id === saved.detail.releaseId &&
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
  const split = rolling ? saved.detail.split : splitOf(saved.detail.stable, saved.template, 0, saved.detail.split.stickyCookie);
  // Recorded first: an engine stopped during the abort finishes it next time.
  d.states.save({ ...saved, detail: { ...saved.detail, split }, checkpoint: { ...saved.checkpoint, weight: 0, aborting: reason } });
  // The app's set (the stable one, adopted with the inventory's spec) at full size, every other replica stopped.
  const live = sup.runOf(env, app);
  if (live) await revertToStable(sup, live, rolling ? {} : { split });
  else await sup.stopSet({ env, app, template: saved.template, release: { id: saved.detail.releaseId } });
  d.bus.publish({ type: 'rollout.aborted', env, app, revision: saved.revision, reason });
  d.bus.publish({ type: 'app.rolledBack', env, app, revision: saved.revision, message: reason });
  d.states.clear(env, app);
}
