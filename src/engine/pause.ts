import type { Plan } from '../plan/plan.js';
import type { Store } from '../store/store.js';
import type { EventBus } from '../core/events.js';

const kvKey = 'paused';

/**
 * Paused environments and apps: the reconcile loop leaves them alone (no sync, no prune, no healing through a
 * re-apply) and status reports them `Suspended`. Persisted in the store, so a pause survives an engine restart.
 * Keys are `env` (the whole environment) or `env/app`.
 */
export class PauseSet {
  private readonly keys: Set<string>;

  constructor(
    private readonly store: Store,
    private readonly bus: EventBus,
  ) {
    let saved: unknown = [];
    try {
      saved = JSON.parse(store.getKv(kvKey) ?? '[]');
    } catch {
      saved = [];
    }
    this.keys = new Set(Array.isArray(saved) ? saved.map(String) : []);
  }

  isPaused(env: string, app?: string): boolean {
    return this.keys.has(env) || (app !== undefined && this.keys.has(`${env}/${app}`));
  }

  /** Whether the app itself (not its environment) is paused. */
  isAppPaused(env: string, app: string): boolean {
    return this.keys.has(`${env}/${app}`);
  }

  /** Returns false when it was already paused. */
  pause(env: string, app?: string): boolean {
    return this.set(env, app, true);
  }

  resume(env: string, app?: string): boolean {
    return this.set(env, app, false);
  }

  list(): { env: string; app: string | null }[] {
    return [...this.keys].sort().map((k) => {
      const i = k.indexOf('/');
      return i < 0 ? { env: k, app: null } : { env: k.slice(0, i), app: k.slice(i + 1) };
    });
  }

  /** The plan without the steps of paused apps: they are neither applied nor recorded as unchanged. */
  withoutPaused(plan: Plan): Plan {
    if (this.keys.size === 0) return plan;
    return { ...plan, steps: plan.steps.filter((s) => !this.isPaused(plan.env, s.app)) };
  }

  private set(env: string, app: string | undefined, paused: boolean): boolean {
    const key = app ? `${env}/${app}` : env;
    if (this.keys.has(key) === paused) return false;
    if (paused) this.keys.add(key);
    else this.keys.delete(key);
    this.store.setKv(kvKey, JSON.stringify([...this.keys]));
    this.bus.publish({ type: 'pause.changed', env, app: app ?? null, paused });
    return true;
  }
}
