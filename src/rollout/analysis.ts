/**
 * Analysis of a new version, pure: measurements → phase (Argo Rollouts semantics), and request-metric
 * measurements from two snapshots of the proxy's per-group counters. No I/O, no clock.
 */
import type { AnalysisMetric, RequestMetricCheck } from '../core/rollout.js';
import type { RequestStats } from '../targets/local/proxy/protocol.js';

/** One measurement: `Error` means it could not be taken (timeout, refused connection, odd exit code). */
export type MeasurementPhase = 'Successful' | 'Failed' | 'Inconclusive' | 'Error';
export type AnalysisPhase = 'Running' | 'Successful' | 'Failed' | 'Inconclusive' | 'Error';

export interface Measurement {
  phase: MeasurementPhase;
  message: string;
}

type Limits = Pick<AnalysisMetric, 'count' | 'failureLimit' | 'consecutiveErrorLimit' | 'inconclusiveLimit'>;

/** Phase of one metric after these measurements (in order). */
export function metricPhase(m: Limits, measurements: readonly Measurement[]): AnalysisPhase {
  let failed = 0;
  let inconclusive = 0;
  let consecutiveErrors = 0;
  for (const x of measurements) {
    if (x.phase === 'Failed') failed++;
    if (x.phase === 'Inconclusive') inconclusive++;
    consecutiveErrors = x.phase === 'Error' ? consecutiveErrors + 1 : 0;
  }
  if (failed > m.failureLimit) return 'Failed';
  if (consecutiveErrors > m.consecutiveErrorLimit) return 'Error';
  if (inconclusive > m.inconclusiveLimit) return 'Inconclusive';
  return measurements.length >= m.count ? 'Successful' : 'Running';
}

const rank: Record<AnalysisPhase, number> = { Failed: 4, Error: 4, Inconclusive: 3, Running: 2, Successful: 1 };

/** Phase of a whole analysis: its worst metric. An error is a failure of the analysis. */
export function analysisPhase(phases: readonly AnalysisPhase[]): AnalysisPhase {
  let worst: AnalysisPhase = 'Successful';
  for (const p of phases) if (rank[p] > rank[worst]) worst = p;
  return worst === 'Error' ? 'Failed' : worst;
}

/** Why a metric ended in `phase`, for events and the Failed message. */
export function describeMetric(name: string, phase: AnalysisPhase, measurements: readonly Measurement[]): string {
  const last = [...measurements].reverse().find((x) => x.phase !== 'Successful') ?? measurements[measurements.length - 1];
  const counts = (['Failed', 'Error', 'Inconclusive'] as const)
    .map((p) => [p, measurements.filter((x) => x.phase === p).length] as const)
    .filter(([, n]) => n > 0)
    .map(([p, n]) => `${n} ${p.toLowerCase()}`);
  const tally = `${measurements.length} measurement${measurements.length === 1 ? '' : 's'}${counts.length ? `: ${counts.join(', ')}` : ''}`;
  return `metric "${name}" ${phase.toLowerCase()} (${tally})${last ? `; last: ${last.message}` : ''}`;
}

/** Counters accumulated between two snapshots (counters only grow; a reset proxy restarts from zero). */
export function statsDelta(before: RequestStats | undefined, after: RequestStats | undefined): RequestStats {
  const zero: RequestStats = { requests: 0, errors5xx: 0, latency: { buckets: [], sumSeconds: 0, count: 0 } };
  const a = after ?? zero;
  const b = before && before.requests <= a.requests ? before : zero;
  const prev = new Map(b.latency.buckets.map((x) => [x.le, x.count]));
  return {
    requests: a.requests - b.requests,
    errors5xx: a.errors5xx - b.errors5xx,
    latency: {
      buckets: a.latency.buckets.map((x) => ({ le: x.le, count: x.count - (prev.get(x.le) ?? 0) })),
      sumSeconds: a.latency.sumSeconds - b.latency.sumSeconds,
      count: a.latency.count - b.latency.count,
    },
  };
}

/**
 * The `q` quantile in seconds from cumulative buckets, interpolated linearly inside the bucket like Prometheus'
 * histogram_quantile; in the +Inf bucket it is the highest finite bound. NaN without observations.
 */
export function quantileSeconds(q: number, buckets: readonly { le: string; count: number }[]): number {
  const total = buckets.length ? buckets[buckets.length - 1].count : 0;
  if (total === 0) return NaN;
  const rankAt = q * total;
  let prevBound = 0;
  let prevCount = 0;
  for (const b of buckets) {
    const bound = b.le === '+Inf' ? Infinity : Number(b.le);
    if (b.count >= rankAt) {
      if (bound === Infinity) return prevBound;
      const inBucket = b.count - prevCount;
      return inBucket === 0 ? bound : prevBound + (bound - prevBound) * ((rankAt - prevCount) / inBucket);
    }
    prevBound = bound;
    prevCount = b.count;
  }
  return prevBound;
}

/** One request-metric measurement over the counters accumulated in an interval. */
export function measureRequests(check: RequestMetricCheck, delta: RequestStats): Measurement {
  const n = delta.requests;
  if (n < check.minRequests || n === 0) {
    return { phase: 'Inconclusive', message: `${n} requests in the interval, fewer than minRequests ${Math.max(check.minRequests, 1)}` };
  }
  const errorRate = delta.errors5xx / n;
  const p99Ms = quantileSeconds(0.99, delta.latency.buckets) * 1000;
  const seen = `error rate ${fmt(errorRate)} (${delta.errors5xx}/${n}), p99 ${fmt(p99Ms)} ms`;
  if (check.maxErrorRate !== undefined && errorRate > check.maxErrorRate) {
    return { phase: 'Failed', message: `${seen}; error rate above ${check.maxErrorRate}` };
  }
  if (check.maxP99Ms !== undefined && p99Ms > check.maxP99Ms) {
    return { phase: 'Failed', message: `${seen}; p99 above ${check.maxP99Ms} ms` };
  }
  return { phase: 'Successful', message: seen };
}

function fmt(x: number): string {
  return Number.isFinite(x) ? String(Math.round(x * 1000) / 1000) : String(x);
}
