/**
 * Drift healing (Argo CD's self-heal): a watch event that shows an object Keelson applied changed or deleted outside
 * Keelson publishes `drift.detected` and applies the object again, at once the first time and then with Argo CD's
 * backoff; an object whose heal needs the engine (a Secret whose values are not kept) requeues the environment.
 */
import type { IgnoreDifference } from '../../core/model.js';
import type { EventBus } from '../../core/events.js';
import type { Logger } from '../../log.js';
import { applyObject, ssa, withManagedFields } from './apply.js';
import { apiMessage, type Cluster } from './client.js';
import { comparable, forApply } from './ignore.js';
import { formatKey, identity, matchesDesired, subsetDiffs, syncOption, type KObject } from './objects.js';
import { isSecret, redactChanges } from './secrets.js';

/** Which app applied a live object, as what, and the fields of it that app leaves to others (`ignoreDifferences`). */
export interface Owner {
  app: string;
  desired: KObject;
  ignore?: IgnoreDifference[];
  /** The app's `syncOptions` (`Replace=true` heals with a replace too). */
  syncOptions?: string[];
}

interface HealState {
  count: number;
  lastAt: number;
  timer?: NodeJS.Timeout;
}

/** Argo CD's self-heal backoff: 2 s × 3ⁿ, at most 5 minutes, forgotten after quiet for longer than that. */
export function healDelayMs(previousHeals: number): number {
  if (previousHeals === 0) return 0;
  return Math.min(2000 * 3 ** (previousHeals - 1), 300_000);
}
const HEAL_COOLDOWN_MS = 330_000;

export interface DriftDeps {
  env: string;
  bus: EventBus;
  log: Logger;
  requeue: (env: string) => void;
  /** The app and desired object of a live object's identity. */
  ownerOf(id: string): Owner | undefined;
  /** Whether an app's drift is left alone now: being applied, or an interrupted rollout owns its replica counts. */
  leftAlone(app: string): boolean;
  api(): Cluster['api'];
  live(o: KObject): KObject | undefined;
  /** Whether this engine may write to the environment now (it holds the environment's claim; src/claims). */
  mayWrite(): boolean;
}

export class DriftHealer {
  private readonly heals = new Map<string, HealState>();
  private closed = false;

  constructor(private readonly d: DriftDeps) {}

  close(): void {
    this.closed = true;
    for (const h of this.heals.values()) if (h.timer) clearTimeout(h.timer);
  }

  check(desired: KObject, live: KObject | undefined): void {
    // An engine that lost the environment's claim heals nothing: the drift may be the new holder's apply.
    if (this.closed || !this.d.mayWrite()) return;
    const owner = this.d.ownerOf(identity(desired));
    if (!owner || this.d.leftAlone(owner.app)) return;
    if (live && (live.metadata as { deletionTimestamp?: string }).deletionTimestamp) return; // wait for the delete event
    const compared = comparable(desired, live, owner.ignore);
    if (matchesDesired(compared, live)) return;
    const key = formatKey(desired);
    const id = identity(desired);
    let state = this.heals.get(id);
    if (state && Date.now() - state.lastAt > HEAL_COOLDOWN_MS) state = undefined;
    state ??= { count: 0, lastAt: 0 };
    this.heals.set(id, state);
    if (state.timer) return; // a heal is already scheduled
    const changes = live ? redactChanges(desired, subsetDiffs(compared, live, '', [], 10).map((c) => ({ field: c.path, old: c.desired, new: c.live }))) : [];
    const message = live
      ? `${key} changed outside Keelson: ${changes.map((c) => `${c.field} ${JSON.stringify(c.old)} → ${JSON.stringify(c.new)}`).join(', ') || 'applied hash differs'}`
      : `${key} was deleted outside Keelson`;
    this.d.bus.publish({ type: 'drift.detected', env: this.d.env, app: owner.app, kind: live ? 'object-modified' : 'object-deleted', message, object: key, changes });
    const delayMs = healDelayMs(state.count);
    this.d.log.info({ env: this.d.env, app: owner.app, object: key, delayms: delayMs }, 'drift detected');
    const heal = async () => {
      state!.timer = undefined;
      if (this.closed || !this.d.mayWrite()) return;
      state!.count++;
      state!.lastAt = Date.now();
      const current = this.d.ownerOf(id);
      if (!current || this.d.leftAlone(current.app)) return;
      if (isSecret(current.desired) && !('data' in current.desired) && !('stringData' in current.desired)) {
        // Its values are not kept (read from the store after a restart): the engine decrypts and applies again.
        this.d.requeue(this.d.env);
        return;
      }
      try {
        // Reverting drift takes back the fields `kubectl edit/scale` took: that is the point of self-heal.
        // Fields left to other managers (ignoreDifferences) stay theirs.
        const api = this.d.api();
        if (syncOption(current.desired, 'Replace', current.syncOptions) === 'true') {
          const { result } = await applyObject(api, current.desired, this.d.live(current.desired), { force: true, ignore: current.ignore, syncOptions: current.syncOptions });
          if (result.action === 'failed') throw new Error(result.message);
        } else {
          const live = await withManagedFields(api, current.desired, this.d.live(current.desired), current.ignore);
          await ssa(api, forApply(current.desired, live, current.ignore), true, false);
        }
        this.d.log.info({ env: this.d.env, app: current.app, object: key }, 'drift healed');
      } catch (err) {
        this.d.log.warn({ env: this.d.env, app: current.app, object: key, err: apiMessage(err) }, 'drift heal failed');
        this.d.requeue(this.d.env);
      }
    };
    if (delayMs === 0) void heal();
    else {
      state.timer = setTimeout(() => void heal(), delayMs);
      state.timer.unref();
    }
  }
}
