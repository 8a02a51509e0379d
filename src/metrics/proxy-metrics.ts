import type { Registry } from 'prom-client';
import type { RequestStats, StatsView } from '../targets/local/proxy/protocol.js';

type Labels = Record<string, string>;
interface Sample {
  metricName?: string;
  labels: Labels;
  value: number;
}

/**
 * Request metrics of the proxy process, per app and version. The proxy keeps cumulative counters and histograms
 * (it outlives engine restarts); at scrape time they are read over its control socket and exposed as they are.
 * prom-client metrics cannot take externally aggregated histograms, so these are registered as collectors that
 * hand the registry ready samples (the registry formats them).
 */
export function registerProxyMetrics(registry: Registry, readStats: () => Promise<StatsView | undefined>): void {
  // The three metrics share one read per scrape.
  let pending: Promise<StatsView | undefined> | undefined;
  const stats = () => {
    pending ??= readStats()
      .catch(() => undefined)
      .finally(() => setTimeout(() => (pending = undefined), 50).unref());
    return pending;
  };

  const perVersion = async (): Promise<{ labels: Labels; s: RequestStats }[]> => {
    const view = await stats();
    const out: { labels: Labels; s: RequestStats }[] = [];
    for (const route of view?.routes ?? []) {
      const i = route.key.indexOf('/');
      const env = i < 0 ? '' : route.key.slice(0, i);
      const app = i < 0 ? route.key : route.key.slice(i + 1);
      for (const v of route.versions) out.push({ labels: { env, app, version: v.version }, s: v });
      // Requests no backend answered (e.g. 503 with no ready replica) belong to no version.
      const answered = route.versions.reduce((n, v) => n + v.requests, 0);
      if (route.requests > answered) {
        const unanswered = route.requests - answered;
        const errors = route.errors5xx - route.versions.reduce((n, v) => n + v.errors5xx, 0);
        out.push({ labels: { env, app, version: 'none' }, s: { requests: unanswered, errors5xx: errors, latency: { buckets: [], sumSeconds: 0, count: 0 } } });
      }
    }
    return out;
  };

  const collector = (name: string, help: string, type: 'counter' | 'histogram', values: () => Promise<Sample[]>) => ({
    name,
    help,
    type,
    aggregator: 'sum' as const,
    async get() {
      return { name, help, type, aggregator: 'sum', values: await values() };
    },
    reset() {},
  });

  const metrics = [
    collector('keelson_proxy_requests_total', 'Requests the proxy answered, per app and version of the replica that answered.', 'counter', async () =>
      (await perVersion()).map(({ labels, s }) => ({ labels, value: s.requests })),
    ),
    collector('keelson_proxy_request_errors_total', 'Proxy responses with status >= 500 (including its own 502/503/504), per app and version.', 'counter', async () =>
      (await perVersion()).map(({ labels, s }) => ({ labels, value: s.errors5xx })),
    ),
    collector('keelson_proxy_request_duration_seconds', 'Latency of requests through the proxy, per app and version.', 'histogram', async () => {
      const out: Sample[] = [];
      for (const { labels, s } of await perVersion()) {
        if (s.latency.count === 0 && s.latency.buckets.length === 0) continue;
        for (const b of s.latency.buckets) out.push({ metricName: 'keelson_proxy_request_duration_seconds_bucket', labels: { ...labels, le: b.le }, value: b.count });
        out.push({ metricName: 'keelson_proxy_request_duration_seconds_sum', labels, value: s.latency.sumSeconds });
        out.push({ metricName: 'keelson_proxy_request_duration_seconds_count', labels, value: s.latency.count });
      }
      return out;
    }),
  ];
  for (const m of metrics) registry.registerMetric(m as never);
}
