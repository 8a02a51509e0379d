import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { EventBus } from '../core/events.js';

/** Prometheus metrics, fed only by the event bus (plus gauges read at scrape time). */
export class Metrics {
  readonly registry = new Registry();
  readonly reconcileDuration: Histogram<'env' | 'result'>;
  readonly syncs: Counter<'env' | 'result'>;
  readonly drift: Counter<'env' | 'kind'>;
  readonly gitFetch: Histogram<'result'>;
  readonly restarts: Counter<'env' | 'app'>;
  readonly processes: Gauge;
  readonly appHealth: Gauge<'env' | 'app' | 'status'>;
  readonly renderFailures: Counter;

  constructor(bus: EventBus, sample: { processes: () => number; health: () => { env: string; app: string; status: string }[] }) {
    collectDefaultMetrics({ register: this.registry, prefix: 'keelson_' });
    const registers = [this.registry];
    this.reconcileDuration = new Histogram({
      name: 'keelson_reconcile_duration_seconds',
      help: 'Duration of syncs that changed something, per environment and result.',
      labelNames: ['env', 'result'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    });
    this.syncs = new Counter({ name: 'keelson_sync_total', help: 'Syncs by result.', labelNames: ['env', 'result'], registers });
    this.drift = new Counter({ name: 'keelson_drift_events_total', help: 'Drift detected (and healed) by kind.', labelNames: ['env', 'kind'], registers });
    this.gitFetch = new Histogram({
      name: 'keelson_git_fetch_duration_seconds',
      help: 'Duration of git fetches of the ops repository.',
      labelNames: ['result'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.restarts = new Counter({ name: 'keelson_process_restarts_total', help: 'Supervised replica restarts.', labelNames: ['env', 'app'], registers });
    this.renderFailures = new Counter({ name: 'keelson_render_failures_total', help: 'Revisions rejected as invalid.', registers });
    this.processes = new Gauge({
      name: 'keelson_supervised_processes',
      help: 'Replicas currently supervised on the local target.',
      registers,
      collect() {
        this.set(sample.processes());
      },
    });
    this.appHealth = new Gauge({
      name: 'keelson_app_health',
      help: '1 for the current health status of each app.',
      labelNames: ['env', 'app', 'status'],
      registers,
      collect() {
        this.reset();
        for (const h of sample.health()) this.set({ env: h.env, app: h.app, status: h.status }, 1);
      },
    });
    bus.subscribe((e) => {
      switch (e.type) {
        case 'sync.completed':
          this.syncs.inc({ env: e.env, result: e.result });
          this.reconcileDuration.observe({ env: e.env, result: e.result }, e.durationMs / 1000);
          break;
        case 'drift.detected':
          this.drift.inc({ env: e.env, kind: e.kind });
          break;
        case 'source.fetched':
          this.gitFetch.observe({ result: 'ok' }, e.durationMs / 1000);
          break;
        case 'source.failed':
          this.gitFetch.observe({ result: 'error' }, 0);
          break;
        case 'replica.restarted':
          this.restarts.inc({ env: e.env, app: e.app });
          break;
        case 'render.failed':
          this.renderFailures.inc();
          break;
      }
    });
  }
}
