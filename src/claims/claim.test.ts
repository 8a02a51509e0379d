import { describe, expect, it } from 'vitest';
import { claimDefaults, claimTimings, requestTimeout, timingsProblem } from './claim.js';

describe('claim timings', () => {
  it('defaults: 10 s claims renewed every 3 s, retried every 1 s, writes stopped 3 s before expiry; Lease requests given up after 2 s', () => {
    expect(claimTimings()).toEqual({ durationMs: 10_000, renewMs: 3_000, retryMs: 1_000, marginMs: 3_000 });
    expect(claimTimings()).toEqual(claimDefaults);
    expect(timingsProblem(claimDefaults)).toBeUndefined();
    expect(requestTimeout(claimDefaults)).toBe(2_000);
  });

  it('a shorter duration alone scales the others down; given ones are kept', () => {
    expect(claimTimings({ durationMs: 4_000 })).toEqual({ durationMs: 4_000, renewMs: 1_200, retryMs: 400, marginMs: 1_200 });
    expect(timingsProblem(claimTimings({ durationMs: 4_000 }))).toBeUndefined();
    expect(claimTimings({ durationMs: 60_000, renewMs: 10_000 })).toEqual({ durationMs: 60_000, renewMs: 10_000, retryMs: 1_000, marginMs: 3_000 });
    expect(requestTimeout(claimTimings({ durationMs: 60_000 }))).toBe(5_000);
  });

  it('refuses timings where the holder would stop writing before it renews, or retries less often than it renews', () => {
    expect(timingsProblem(claimTimings({ renewMs: 8_000 }))).toBe('the renewal period (8s) must be shorter than the claim duration less the margin (10s − 3s = 7s): else the holder stops writing before it renews');
    expect(timingsProblem(claimTimings({ marginMs: 10_000 }))).toMatch(/^the claim margin \(10s\) must be more than 0 and less than the claim duration \(10s\)/);
    expect(timingsProblem(claimTimings({ retryMs: 5_000 }))).toBe('the retry period (5s) must be more than 0 and at most the renewal period (3s)');
    expect(timingsProblem(claimTimings({ durationMs: 500 }))).toBe('the claim duration must be at least 1s, got 0.5s');
  });
});
