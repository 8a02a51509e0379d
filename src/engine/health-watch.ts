/**
 * Turns health into events: after anything that can change an app's health (a replica started, exited, became ready,
 * drift, a sync), and every few seconds anyway, it reads the environments' status and publishes `health.changed` for
 * each app whose health differs from the last seen. Notifications (healthDegraded), the event stream and the
 * dashboard subscribe to that; nothing polls the targets for it.
 */
import type { HealthCode } from '../core/types.js';
import type { EventBus, Stamped } from '../core/events.js';

export interface HealthSource {
  status(): Promise<{ environments: { name: string; apps: { name: string; health: HealthCode; message: string }[] }[] }>;
}

const triggers = new Set<Stamped['type']>(['replica.started', 'replica.exited', 'replica.ready', 'replica.adopted', 'drift.detected', 'sync.completed', 'app.changed', 'app.rolledBack']);

export class HealthWatch {
  private readonly last = new Map<string, HealthCode>();
  private timer?: NodeJS.Timeout;
  private pending?: NodeJS.Timeout;
  private running = false;
  private off?: () => void;

  constructor(
    private readonly bus: EventBus,
    private readonly source: HealthSource,
    private readonly o: { debounceMs?: number; intervalMs?: number } = {},
  ) {}

  start(): void {
    this.off = this.bus.subscribe((e) => {
      if (triggers.has(e.type)) this.soon();
    });
    this.timer = setInterval(() => this.soon(), this.o.intervalMs ?? 5000);
    this.timer.unref();
  }

  stop(): void {
    this.off?.();
    if (this.timer) clearInterval(this.timer);
    if (this.pending) clearTimeout(this.pending);
  }

  /**
   * How long the last check took: checks are spaced by ten times that (≤ 10% of a core), but never by more than the
   * regular interval, so one slow status read does not delay health events for long; and by at least `debounceMs`
   * (default 1 s): while a thousand apps sync, events come all the time, and a cheap check would otherwise run ten
   * times a second.
   */
  private lastCheckMs = 0;

  private soon(): void {
    if (this.pending) return;
    this.pending = setTimeout(() => {
      this.pending = undefined;
      void this.check();
    }, Math.max(this.o.debounceMs ?? 1000, Math.min(10 * this.lastCheckMs, this.o.intervalMs ?? 5000)));
    this.pending.unref();
  }

  private async check(): Promise<void> {
    if (this.running) return this.soon();
    this.running = true;
    const started = performance.now();
    try {
      const seen = new Set<string>();
      for (const env of (await this.source.status()).environments) {
        for (const app of env.apps) {
          const key = `${env.name}/${app.name}`;
          seen.add(key);
          const from = this.last.get(key);
          this.last.set(key, app.health);
          // The first sighting sets the baseline; only changes are events.
          if (from !== undefined && from !== app.health) {
            this.bus.publish({ type: 'health.changed', env: env.name, app: app.name, from, to: app.health, message: app.message.split('\n')[0] });
          }
        }
      }
      for (const key of this.last.keys()) if (!seen.has(key)) this.last.delete(key);
    } catch {
      // A status read that fails (engine stopping) is retried by the next trigger or tick.
    } finally {
      this.running = false;
      this.lastCheckMs = performance.now() - started;
    }
  }
}
