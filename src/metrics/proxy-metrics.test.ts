import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { StatsView } from '../targets/local/proxy/protocol.js';
import { registerProxyMetrics } from './proxy-metrics.js';

const hist = (counts: number[], sum: number) => ({
  buckets: counts.map((count, i) => ({ le: i === counts.length - 1 ? '+Inf' : String([0.005, 0.01][i]), count })),
  sumSeconds: sum,
  count: counts.at(-1)!,
});

describe('proxy metrics', () => {
  it('exposes the proxy stats per app and version in Prometheus format', async () => {
    const stats = {
      startedAt: '2026-01-01T00:00:00Z',
      routes: [
        {
          key: 'prod/web',
          requests: 12,
          errors5xx: 3,
          latency: hist([5, 9, 12], 0.5),
          versions: [
            { version: '1.0.0', requests: 7, errors5xx: 1, latency: hist([3, 6, 7], 0.3) },
            { version: '1.1.0', requests: 3, errors5xx: 0, latency: hist([2, 3, 3], 0.1) },
          ],
          groups: [],
        },
      ],
    } as unknown as StatsView;
    const registry = new Registry();
    registerProxyMetrics(registry, async () => stats);
    const text = await registry.metrics();
    expect(text).toContain('# TYPE keelson_proxy_requests_total counter');
    expect(text).toContain('keelson_proxy_requests_total{env="prod",app="web",version="1.0.0"} 7');
    expect(text).toContain('keelson_proxy_requests_total{env="prod",app="web",version="1.1.0"} 3');
    // Two requests no replica answered (e.g. 503 while none was ready), both errors.
    expect(text).toContain('keelson_proxy_requests_total{env="prod",app="web",version="none"} 2');
    expect(text).toContain('keelson_proxy_request_errors_total{env="prod",app="web",version="none"} 2');
    expect(text).toContain('# TYPE keelson_proxy_request_duration_seconds histogram');
    expect(text).toContain('keelson_proxy_request_duration_seconds_bucket{env="prod",app="web",version="1.0.0",le="0.005"} 3');
    expect(text).toContain('keelson_proxy_request_duration_seconds_bucket{env="prod",app="web",version="1.0.0",le="+Inf"} 7');
    expect(text).toContain('keelson_proxy_request_duration_seconds_sum{env="prod",app="web",version="1.0.0"} 0.3');
    expect(text).toContain('keelson_proxy_request_duration_seconds_count{env="prod",app="web",version="1.1.0"} 3');
  });

  it('exposes nothing (and does not fail the scrape) when the proxy is not running', async () => {
    const registry = new Registry();
    registerProxyMetrics(registry, async () => {
      throw new Error('connect ENOENT proxy.sock');
    });
    const text = await registry.metrics();
    expect(text).toContain('# HELP keelson_proxy_requests_total');
    expect(text).not.toMatch(/^keelson_proxy_requests_total\{/m);
  });
});
