/**
 * The Kubernetes target's rollout checkpoints: the shared record (src/rollout/checkpoints.ts) of where a blue/green or
 * canary rollout is (progressive.ts), memoized (drift checks ask for it on every watch event of the app's objects).
 * A rolling update is the Deployment controller's own and carries on without the engine: it writes none.
 *
 * Records of earlier versions, `kubernetes.rollout/<env>/<app>`, are read back and moved to `rollout/<env>/<app>`.
 */
import { RolloutCheckpoints as SharedCheckpoints, type RolloutCheckpointRecord as SharedRecord } from '../../rollout/checkpoints.js';
import type { KvStore } from '../../store/kv.js';

export type RolloutCheckpointRecord = SharedRecord;

export class RolloutCheckpoints extends SharedCheckpoints {
  constructor(kv: KvStore) {
    super(kv, { target: 'kubernetes', legacyKey: (env, app) => `kubernetes.rollout/${env}/${app}` });
  }
}
