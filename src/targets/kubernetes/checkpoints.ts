/**
 * Each app's running rollout checkpoint on the Kubernetes target: where a blue/green or canary rollout is (see
 * progressive.ts), kept in the store so that the next engine resumes it at the same step, and memoized (drift checks
 * ask for it on every watch event of the app's objects).
 *
 * The record is target-neutral on purpose, so that one checkpoint record can serve every strategy on both targets
 * (issue 10 "Shape"; the local target keeps its own table today, `src/targets/local/rollout-state.ts`):
 *
 *   {
 *     env, app        the app it belongs to (one record per app; none when no rollout runs)
 *     template        the target's template hash of the spec being rolled out: a record of another spec is stale
 *     plan            digest of the planned steps (rollout/steps.ts `planDigest`): only the same steps resume
 *     checkpoint      the step machine's position (rollout/runner.ts `RolloutCheckpoint`: step, weight, pauses,
 *                     `aborting` when an abort was under way)
 *     strategy?       'blueGreen' | 'canary' (a rolling update's checkpoint will use 'rolling')
 *     revision?       the ops-repository revision the rollout runs for
 *     updatedAt?      ISO time of the last step transition
 *   }
 *
 * Stored as JSON under `kubernetes.rollout/<env>/<app>`; records written before `env`/`app` were added read back
 * with them filled in from the key.
 */
import type { RolloutCheckpoint } from '../../rollout/runner.js';
import type { KvStore } from './inventory.js';

export interface RolloutCheckpointRecord {
  env: string;
  app: string;
  template: string;
  plan: string;
  checkpoint: RolloutCheckpoint;
  strategy?: 'rolling' | 'blueGreen' | 'canary';
  revision?: string;
  updatedAt?: string;
}

export class RolloutCheckpoints {
  private readonly memo = new Map<string, RolloutCheckpointRecord | null>();

  constructor(private readonly kv: KvStore) {}

  private key(env: string, app: string): string {
    return `kubernetes.rollout/${env}/${app}`;
  }

  get(env: string, app: string): RolloutCheckpointRecord | undefined {
    const k = this.key(env, app);
    if (!this.memo.has(k)) {
      const raw = this.kv.getKv(k);
      this.memo.set(k, raw ? { env, app, ...(JSON.parse(raw) as Omit<RolloutCheckpointRecord, 'env' | 'app'>) } : null);
    }
    return this.memo.get(k) ?? undefined;
  }

  save(record: Omit<RolloutCheckpointRecord, 'updatedAt'>): void {
    const k = this.key(record.env, record.app);
    const stored: RolloutCheckpointRecord = { ...record, updatedAt: new Date().toISOString() };
    this.kv.setKv(k, JSON.stringify(stored));
    this.memo.set(k, stored);
  }

  clear(env: string, app: string): void {
    if (this.get(env, app) === undefined) return;
    const k = this.key(env, app);
    this.kv.setKv(k, '');
    this.memo.set(k, null);
  }
}
