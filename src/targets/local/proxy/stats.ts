import { latencyBucketsSeconds, type RequestStats, type RouteStats } from './protocol.js';

const bounds = latencyBucketsSeconds;

/** Request count, 5xx count and latency histogram; cumulative, like Prometheus counters. */
export class RequestCounter {
  requests = 0;
  errors5xx = 0;
  sumSeconds = 0;
  // Per-bucket (non-cumulative) counts; the last slot is +Inf.
  private readonly buckets = new Float64Array(bounds.length + 1);

  record(status: number, seconds: number): void {
    this.requests++;
    if (status >= 500) this.errors5xx++;
    this.sumSeconds += seconds;
    let i = 0;
    while (i < bounds.length && seconds > bounds[i]) i++;
    this.buckets[i]++;
  }

  view(): RequestStats {
    let acc = 0;
    const buckets = Array.from(this.buckets, (n, i) => {
      acc += n;
      return { le: i < bounds.length ? String(bounds[i]) : '+Inf', count: acc };
    });
    return {
      requests: this.requests,
      errors5xx: this.errors5xx,
      latency: { buckets, sumSeconds: this.sumSeconds, count: this.requests },
    };
  }
}

/** Stats of one route, in total and per version and per group of the backend that answered. */
export class RouteCounters {
  readonly total = new RequestCounter();
  private readonly byVersion = new Map<string, RequestCounter>();
  private readonly byGroup = new Map<string, RequestCounter>();

  /** `backend` is undefined when no backend answered (e.g. 503 with no backends). */
  record(backend: { version: string; group?: string } | undefined, status: number, seconds: number): void {
    this.total.record(status, seconds);
    if (backend === undefined) return;
    counterOf(this.byVersion, backend.version).record(status, seconds);
    if (backend.group !== undefined) counterOf(this.byGroup, backend.group).record(status, seconds);
  }

  view(key: string): RouteStats {
    const versions = [...this.byVersion].map(([version, c]) => ({ version, ...c.view() }));
    versions.sort((a, b) => a.version.localeCompare(b.version));
    const groups = [...this.byGroup].map(([group, c]) => ({ group, ...c.view() }));
    groups.sort((a, b) => a.group.localeCompare(b.group));
    return { key, ...this.total.view(), versions, groups };
  }
}

function counterOf(m: Map<string, RequestCounter>, k: string): RequestCounter {
  let c = m.get(k);
  if (!c) m.set(k, (c = new RequestCounter()));
  return c;
}
