import { describe, expect, test } from 'vitest';
import type { RequestStats } from '../targets/local/proxy/protocol.js';
import { RequestCounter } from '../targets/local/proxy/stats.js';
import { analysisPhase, measureRequests, metricPhase, quantileSeconds, statsDelta, type Measurement } from './analysis.js';

const limits = { count: 3, failureLimit: 0, consecutiveErrorLimit: 2, inconclusiveLimit: 0 };
const m = (phase: Measurement['phase']): Measurement => ({ phase, message: phase });

describe('metricPhase', () => {
  test('succeeds after count successful measurements and runs until then', () => {
    expect(metricPhase(limits, [m('Successful'), m('Successful')])).toBe('Running');
    expect(metricPhase(limits, [m('Successful'), m('Successful'), m('Successful')])).toBe('Successful');
  });

  test('fails once failed measurements exceed failureLimit', () => {
    expect(metricPhase(limits, [m('Successful'), m('Failed')])).toBe('Failed');
    expect(metricPhase({ ...limits, failureLimit: 1 }, [m('Failed'), m('Successful')])).toBe('Running');
    expect(metricPhase({ ...limits, failureLimit: 1 }, [m('Failed'), m('Failed')])).toBe('Failed');
  });

  test('errors only count when consecutive beyond consecutiveErrorLimit', () => {
    expect(metricPhase({ ...limits, count: 10 }, [m('Error'), m('Error'), m('Successful'), m('Error'), m('Error')])).toBe('Running');
    expect(metricPhase({ ...limits, count: 10 }, [m('Error'), m('Error'), m('Error')])).toBe('Error');
  });

  test('is inconclusive beyond inconclusiveLimit', () => {
    expect(metricPhase(limits, [m('Inconclusive')])).toBe('Inconclusive');
    expect(metricPhase({ ...limits, inconclusiveLimit: 1 }, [m('Inconclusive')])).toBe('Running');
  });
});

describe('analysisPhase', () => {
  test('is the worst metric, an error counting as a failure', () => {
    expect(analysisPhase(['Successful', 'Successful'])).toBe('Successful');
    expect(analysisPhase(['Successful', 'Inconclusive'])).toBe('Inconclusive');
    expect(analysisPhase(['Inconclusive', 'Error'])).toBe('Failed');
  });
});

function stats(samples: [status: number, seconds: number][]): RequestStats {
  const c = new RequestCounter();
  for (const [s, t] of samples) c.record(s, t);
  return c.view();
}

describe('request metrics', () => {
  test('measures only what happened since the previous snapshot', () => {
    const before = stats([[500, 0.001], [500, 0.001]]);
    const after = stats([[500, 0.001], [500, 0.001], [200, 0.001], [200, 0.001]]);
    const d = statsDelta(before, after);
    expect(d).toMatchObject({ requests: 2, errors5xx: 0 });
    expect(measureRequests({ maxErrorRate: 0.1, minRequests: 1 }, d).phase).toBe('Successful');
  });

  test('fails on the error rate and on p99 latency, and is inconclusive without enough requests', () => {
    const half = stats([[200, 0.001], [503, 0.001]]);
    expect(measureRequests({ maxErrorRate: 0.1, minRequests: 1 }, half)).toMatchObject({ phase: 'Failed', message: expect.stringContaining('error rate 0.5 (1/2)') });
    const slow = stats(Array.from({ length: 100 }, (_, i): [number, number] => [200, i < 95 ? 0.002 : 0.8]));
    expect(measureRequests({ maxP99Ms: 500, minRequests: 1 }, slow).phase).toBe('Failed');
    expect(measureRequests({ maxP99Ms: 1000, minRequests: 1 }, slow).phase).toBe('Successful');
    expect(measureRequests({ maxErrorRate: 0.1, minRequests: 5 }, half).phase).toBe('Inconclusive');
    expect(measureRequests({ maxErrorRate: 0.1, minRequests: 0 }, stats([])).phase).toBe('Inconclusive');
  });

  test('interpolates quantiles inside buckets like histogram_quantile', () => {
    const s = stats(Array.from({ length: 10 }, (): [number, number] => [200, 0.03]));
    const q = quantileSeconds(0.5, s.latency.buckets);
    expect(q).toBeGreaterThan(0.025);
    expect(q).toBeLessThanOrEqual(0.05);
    expect(quantileSeconds(0.99, stats([[200, 99]]).latency.buckets)).toBe(10);
    expect(quantileSeconds(0.99, stats([]).latency.buckets)).toBeNaN();
  });

  test('treats a restarted proxy (counters went down) as starting from zero', () => {
    const before = stats([[200, 0.001], [200, 0.001], [200, 0.001]]);
    const after = stats([[500, 0.001]]);
    expect(statsDelta(before, after)).toMatchObject({ requests: 1, errors5xx: 1 });
  });
});
