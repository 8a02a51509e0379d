/**
 * What a starting engine adopts (pure): the replicas the store records, matched with the inventory. A replica of an
 * app no longer in the inventory is stale (a prune that did not finish: it is stopped). Each app's current set is
 * its inventory spec, with the release of its replicas of that spec (a rolling update the engine stopped in the
 * middle of leaves replicas of the new release too). Each replica keeps the spec it was started with: the app's, the
 * new set's of an interrupted rollout, or else the app's with the replica's own version (a template mismatch is for
 * the next reconcile to roll). The proxy keeps the weights of an interrupted blue/green or canary rollout whose
 * stable set is still the app's. The supervisor (`Supervisor.start`) then adopts or restarts each process.
 */
import type { DesiredApp } from '../../core/model.js';
import { appKey } from '../../core/types.js';
import type { InventoryRow, ReplicaRow } from '../../store/store.js';
import type { TrafficSplit } from './proxy/protocol.js';
import type { RolloutRecord } from './rollout-state.js';
import { templateHash } from './spec-hash.js';
import type { AppRun } from './supervisor-types.js';

export interface AdoptionPlan {
  /** Recorded replicas of apps no longer in the inventory. */
  stale: ReplicaRow[];
  /** Each app's current set, by `env/app`. */
  apps: Map<string, AppRun>;
  /** Every other recorded replica with the spec it runs with. */
  replicas: { row: ReplicaRow; spec: DesiredApp }[];
  /** The proxy's weights of interrupted progressive rollouts, by `env/app`. */
  traffic: Map<string, TrafficSplit>;
}

export function adoptionPlan(inventoryRows: InventoryRow[], rows: ReplicaRow[], interrupted: RolloutRecord[]): AdoptionPlan {
  const inventory = new Map(inventoryRows.map((r) => [appKey(r.env, r.app), r]));
  const rollouts = new Map(interrupted.map((r) => [appKey(r.env, r.app), r]));
  const plan: AdoptionPlan = { stale: [], apps: new Map(), replicas: [], traffic: new Map() };
  for (const row of rows) {
    const key = appKey(row.env, row.app);
    const inv = inventory.get(key);
    if (!inv) {
      plan.stale.push(row);
      continue;
    }
    const interruptedRollout = rollouts.get(key);
    if (!plan.apps.has(key)) plan.apps.set(key, currentSet(inv, rows.filter((x) => x.env === row.env && x.app === row.app), interruptedRollout));
    const run = plan.apps.get(key)!;
    const replicaSpec = row.specHash === run.template ? run.spec : interruptedRollout && row.specHash === interruptedRollout.template ? interruptedRollout.detail.spec : { ...run.spec, version: row.version };
    plan.replicas.push({ row, spec: replicaSpec });
  }
  for (const [key, r] of rollouts) if (r.strategy !== 'rolling' && plan.apps.get(key)?.template === r.detail.stable) plan.traffic.set(key, r.detail.split);
  return plan;
}

/**
 * An app's current set: the inventory's spec, with the release of its replicas of that spec; or, when a rollout
 * finished here and the engine stopped before recording it, the rollout's new set (the stable one is gone or going).
 * When no replica of the current spec is left (a rolling update replaced them all, then the engine stopped), the
 * release comes from the rollout record.
 */
function currentSet(inv: InventoryRow, rows: ReplicaRow[], rollout: RolloutRecord | undefined): AppRun {
  const recorded = inv.spec as DesiredApp;
  const finished = rollout?.checkpoint.finished && rollout.detail.stable === templateHash(recorded);
  const spec = finished ? rollout.detail.spec : recorded;
  const template = templateHash(spec);
  const own = rows.find((x) => x.specHash === template);
  const stableRelease = rollout && !finished && rollout.detail.stable === template ? rollout.detail.stableRelease : undefined;
  const any = rows[0]!;
  const release = own ? { id: own.releaseId, dir: own.releaseDir, hash: own.releaseHash } : (stableRelease ?? { id: any.releaseId, dir: any.releaseDir, hash: any.releaseHash });
  return { env: inv.env, app: inv.app, spec, template, release, revision: finished ? rollout.revision : inv.revision, rollingOut: false };
}
