/**
 * Applies in flight, each cancellable: when a newer revision declares a different template for an app whose
 * rollout is still waiting (on a failing health gate, a pause or an analysis), that rollout is cancelled so the
 * environment's loop rolls forward to the new revision at once instead of waiting out the deadline.
 */
import type { DesiredApp, DesiredState } from '../core/model.js';
import { appKey } from '../core/types.js';

interface Inflight {
  template: string;
  controller: AbortController;
}

export class InflightApplies {
  private readonly byApp = new Map<string, Inflight>();

  /** Registers an apply of `app` at `template`; returns the signal that cancels it and the function that ends it. */
  begin(env: string, app: string, template: string): { signal: AbortSignal; end: () => void } {
    const key = appKey(env, app);
    const entry = { template, controller: new AbortController() };
    this.byApp.set(key, entry);
    return {
      signal: entry.controller.signal,
      end: () => {
        if (this.byApp.get(key) === entry) this.byApp.delete(key);
      },
    };
  }

  /** Cancels every apply whose app the new desired state declares with another template. Returns the app keys. */
  supersede(desired: DesiredState, revision: string, templateOf: (a: DesiredApp) => string): string[] {
    const next = new Map<string, DesiredApp>();
    for (const env of desired.environments) for (const a of env.apps) next.set(appKey(env.name, a.name), a);
    const cancelled: string[] = [];
    for (const [key, entry] of this.byApp) {
      const d = next.get(key);
      if (d && templateOf(d) === entry.template) continue;
      entry.controller.abort(new Error(`superseded by revision ${revision.slice(0, 7)}`));
      cancelled.push(key);
    }
    return cancelled;
  }
}
