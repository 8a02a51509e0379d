/**
 * The engine's sync-window gate: asks `checkWindows` before a sync, remembers why an environment waits (for
 * status) and publishes `sync.waiting` when that reason changes or a manual sync is refused.
 */
import type { DesiredEnvironment } from '../core/model.js';
import type { EventBus } from '../core/events.js';
import { checkWindows } from './windows.js';

export interface GateResult {
  allowed: boolean;
  /** When to look again: when the window opens, at most `maxMs`. */
  requeueAfterMs: number;
}

export class WindowGate {
  private readonly waitingFor = new Map<string, string>();

  constructor(private readonly bus: EventBus, private readonly now: () => Date = () => new Date()) {}

  check(env: DesiredEnvironment, revision: string, opts: { manual: boolean; maxMs: number }): GateResult {
    const now = this.now();
    const v = checkWindows(env.syncWindows, now, { manual: opts.manual });
    if (v.allowed) {
      this.waitingFor.delete(env.name);
      return { allowed: true, requeueAfterMs: opts.maxMs };
    }
    const reason = `sync waits: ${v.reason}`;
    if (opts.manual || this.waitingFor.get(env.name) !== reason) {
      this.bus.publish({ type: 'sync.waiting', env: env.name, revision, reason, opensAt: v.opensAt?.toISOString() ?? null });
    }
    this.waitingFor.set(env.name, reason);
    const untilOpen = v.opensAt ? Math.max(v.opensAt.getTime() - now.getTime(), 1000) : opts.maxMs;
    return { allowed: false, requeueAfterMs: Math.min(untilOpen, opts.maxMs) };
  }

  /** Why the environment's syncs wait, or null. */
  waiting(env: string): string | null {
    return this.waitingFor.get(env) ?? null;
  }
}
