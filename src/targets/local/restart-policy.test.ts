import { describe, expect, it } from 'vitest';
import { restartDelay } from './restart-policy.js';

const replica = () => ({ readySince: undefined as number | undefined, failures: 0, promptRestarts: [] as number[] });
const crash = { wasReady: false, code: 1, signal: null, oom: false };

describe('restart policy', () => {
  it('a crashing replica restarts at once, then after 1 s doubling up to 5 min', () => {
    const r = replica();
    const delays = Array.from({ length: 12 }, () => restartDelay(r, crash));
    expect(delays).toEqual([0, 1000, 2000, 4000, 8000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000, 300_000]);
  });

  it('a serving replica killed from outside restarts at once, up to 30 times a minute, then backs off', () => {
    const r = replica();
    const killed = { wasReady: true, code: null, signal: 'SIGKILL' as const, oom: false };
    const delays = Array.from({ length: 32 }, () => restartDelay(r, killed));
    expect(delays.slice(0, 30).every((d) => d === 0)).toBe(true);
    expect(delays.slice(30)).toEqual([0, 1000]);
  });

  it('an OOM kill over its own limit backs off like a crash, and ten minutes ready forgive earlier crashes', () => {
    const r = replica();
    const oom = { wasReady: true, code: null, signal: 'SIGKILL' as const, oom: true };
    expect([restartDelay(r, oom), restartDelay(r, oom), restartDelay(r, oom)]).toEqual([0, 1000, 2000]);
    r.readySince = Date.now() - 10 * 60_000;
    expect(restartDelay(r, crash)).toBe(0);
  });
});
