/**
 * `revertToStable`: the one way back on the local target, whatever started it:
 *   - a rolling update whose new replica did not get ready in time (Supervisor.rollout),
 *   - a blue/green or canary rollout aborted: a failed analysis or readiness, `keelson rollout abort`, a newer
 *     revision (progressive.ts, the step machine's `abort`),
 *   - a rollout (rolling or progressive) that an engine stop interrupted and that is no longer desired when the next
 *     engine applies the app (rollout-state.ts `takeOverInterrupted`).
 * In that order, so that capacity never drops below the stable set's and one version alone serves at the end:
 *   1. the proxy's weights, when there are (progressive), send every new request to the stable set;
 *   2. the stable set is brought back to its full count and waited on until ready (or its deadline);
 *   3. every other replica of the app is drained and stopped (the new set, and any set an earlier interruption left);
 *   4. the stable set is the app again: healed as usual, weights dropped, the route table published.
 * The caller reports it (`app.rolledBack`, and `rollout.aborted` for a rollout) with its own reason.
 *
 * The GitOps rollback (`keelson rollback`, the API's and dashboard's) is something else: a commit of an earlier
 * declaration, deployed like any commit (src/rollback/restore.ts).
 */
import { appKey } from '../../core/types.js';
import type { TrafficSplit } from './proxy/protocol.js';
import type { AppRun, Supervisor } from './supervisor.js';

export interface RevertOptions {
  /** The weights that send every new request to the stable set (a progressive rollout's). */
  split?: TrafficSplit;
}

/** Resolves true when the stable set was back to its full count of ready replicas before the others stopped. */
export async function revertToStable(sup: Supervisor, stable: AppRun, o: RevertOptions = {}): Promise<boolean> {
  if (o.split) await sup.setTraffic(appKey(stable.env, stable.app), o.split);
  // Scaled here, not by the healer, until it is the app again.
  stable.rollingOut = true;
  await sup.scaleSet(stable, stable.spec.replicas);
  const ready = await sup.waitSetReady(stable, stable.spec.replicas, Date.now() + stable.spec.progressDeadlineSeconds * 1000);
  await sup.stopAllBut(stable);
  await sup.settle(stable);
  return ready;
}
