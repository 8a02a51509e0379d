/**
 * Rollout checkpoints: one record per app whose rollout is under way, for every strategy on both targets, kept in
 * the engine's store so that an engine stopped in the middle (SIGTERM, SIGKILL, an upgrade) resumes the rollout at
 * the same step, or finishes its abort, instead of leaving two versions serving.
 *
 *   {
 *     env, app        the app it belongs to (one record per app; none when no rollout runs)
 *     target          'local' | 'kubernetes': the target that wrote it (each target reads only its own)
 *     strategy        'rolling' | 'blueGreen' | 'canary' (absent only in Kubernetes records of earlier versions)
 *     revision        the ops-repository revision the rollout runs for
 *     from, to        versions of the stable and the new set
 *     template        the target's template hash of the spec being rolled out: a record of another spec is stale
 *     plan            digest of the planned steps (rollout/steps.ts `planDigest`): only the same steps resume at the
 *                     same index ('' for a rolling update, which has no steps)
 *     checkpoint      the step machine's position (rollout/runner.ts `RolloutCheckpoint`: step, weight, pauses, and
 *                     `aborting` with why, once an abort is under way: an interrupted abort is finished, never resumed;
 *                     `finished` once the rollout is done but the engine has not recorded the sync (local target))
 *     detail          what only the target needs to resume: the local target keeps its stable set's template, the
 *                     new set's release and spec, and the proxy's weights; the Kubernetes target none (its sets are
 *                     in its inventory)
 *     updatedAt       ISO time of the last write
 *   }
 *
 * Who writes it: a blue/green or canary rollout at every step transition of the step machine (both targets); a local
 * rolling update once, before its first replica is replaced (it goes on replacing replicas after a restart, or puts
 * every replica back on `from`). A rolling update on Kubernetes is the Deployment controller's own, which carries on
 * by itself without the engine: it writes none. The record goes when the rollout ends (aborted, failed; on the local
 * target a promoted or finished one only once the engine recorded the sync) and when the app is deleted.
 *
 * Stored as JSON under `rollout/<env>/<app>` in the store's key-value table; `rollout/index` lists the [env, app] of
 * every record (an entry is added before its record is written and removed after it is cleared, so no record is ever
 * unlisted). Records of earlier versions are read back and moved here: the Kubernetes target's
 * `kubernetes.rollout/<env>/<app>` entries on first read (`legacyKey`), the local target's `rollouts` table at start
 * (`restore`).
 */
import type { KvStore } from '../store/kv.js';
import type { RolloutCheckpoint } from './runner.js';

export type CheckpointStrategy = 'rolling' | 'blueGreen' | 'canary';
export type CheckpointTarget = 'local' | 'kubernetes';

export interface RolloutCheckpointRecord<D = undefined> {
  env: string;
  app: string;
  target: CheckpointTarget;
  strategy?: CheckpointStrategy;
  revision?: string;
  from?: string;
  to?: string;
  template: string;
  plan: string;
  checkpoint: RolloutCheckpoint;
  detail?: D;
  updatedAt?: string;
}

/** What a target saves: the store adds `target` and `updatedAt`. */
export type CheckpointInput<D = undefined> = Omit<RolloutCheckpointRecord<D>, 'target' | 'updatedAt'>;

export interface CheckpointStoreOptions {
  target: CheckpointTarget;
  /** Where this target kept an app's record before this module existed: read back once, then moved here. */
  legacyKey?: (env: string, app: string) => string;
}

const INDEX = 'rollout/index';

export function checkpointKey(env: string, app: string): string {
  return `rollout/${env}/${app}`;
}

/** The records of one target, memoized (the local target's `observe` and Kubernetes drift checks ask very often). */
export class RolloutCheckpoints<D = undefined> {
  private readonly memo = new Map<string, RolloutCheckpointRecord<D> | null>();

  constructor(
    private readonly kv: KvStore,
    private readonly o: CheckpointStoreOptions,
  ) {}

  get(env: string, app: string): RolloutCheckpointRecord<D> | undefined {
    const k = checkpointKey(env, app);
    if (!this.memo.has(k)) this.memo.set(k, this.read(env, app));
    const r = this.memo.get(k);
    return r && r.target === this.o.target ? r : undefined;
  }

  /** Every record of this target. */
  all(): RolloutCheckpointRecord<D>[] {
    return this.index().flatMap(([env, app]) => this.get(env, app) ?? []);
  }

  save(record: CheckpointInput<D>): void {
    this.write({ ...record, target: this.o.target, updatedAt: new Date().toISOString() });
  }

  /** A record read from an earlier version's storage, written as it was. */
  restore(record: CheckpointInput<D> & { updatedAt?: string }): void {
    this.write({ ...record, target: this.o.target });
  }

  clear(env: string, app: string): void {
    if (this.get(env, app) === undefined) return;
    const k = checkpointKey(env, app);
    this.kv.setKv(k, '');
    this.memo.set(k, null);
    this.setIndex(this.index().filter(([e, a]) => !(e === env && a === app)));
  }

  private write(record: RolloutCheckpointRecord<D>): void {
    const list = this.index();
    if (!list.some(([e, a]) => e === record.env && a === record.app)) this.setIndex([...list, [record.env, record.app]]);
    const k = checkpointKey(record.env, record.app);
    this.kv.setKv(k, JSON.stringify(record));
    this.memo.set(k, record);
  }

  private read(env: string, app: string): RolloutCheckpointRecord<D> | null {
    const raw = this.kv.getKv(checkpointKey(env, app));
    if (raw) return parse<RolloutCheckpointRecord<D>>(raw);
    const legacyKey = this.o.legacyKey?.(env, app);
    const old = legacyKey ? this.kv.getKv(legacyKey) : undefined;
    const legacy = old ? parse<Omit<RolloutCheckpointRecord<D>, 'env' | 'app' | 'target'>>(old) : null;
    if (!legacyKey || !legacy) return null;
    // Records of earlier versions were written without env/app (they were in the key) and without target.
    const record: RolloutCheckpointRecord<D> = { ...legacy, env, app, target: this.o.target };
    this.write(record);
    this.kv.setKv(legacyKey, '');
    return record;
  }

  private index(): [string, string][] {
    return parse<[string, string][]>(this.kv.getKv(INDEX) || '[]') ?? [];
  }

  private setIndex(list: [string, string][]): void {
    this.kv.setKv(INDEX, list.length ? JSON.stringify(list) : '');
  }
}

/** An unreadable record (a store edited by hand) counts as none: the next apply starts the rollout over. */
function parse<T>(raw: string): T | null {
  try {
    return JSON.parse(raw) as T;
  } catch {
    return null;
  }
}
