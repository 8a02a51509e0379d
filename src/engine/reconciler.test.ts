import { describe, expect, it } from 'vitest';
import { Reconciler } from './reconciler.js';

describe('Reconciler', () => {
  it('de-duplicates keys queued while a reconcile runs', async () => {
    let calls = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const rec = new Reconciler({
      reconcile: async () => {
        calls++;
        if (calls === 1) await gate;
        return {};
      },
      onError: () => undefined,
    });
    const first = rec.enqueue('dev');
    const a = rec.enqueue('dev');
    const b = rec.enqueue('dev');
    release();
    await Promise.all([first, a, b]);
    expect(calls).toBe(2);
    await rec.stop();
  });

  it('retries a failing key with growing backoff and resets after success', async () => {
    const delays: number[] = [];
    let n = 0;
    let succeeded!: () => void;
    const done = new Promise<void>((r) => (succeeded = r));
    const rec = new Reconciler({
      baseBackoffMs: 5,
      reconcile: async () => {
        if (++n < 4) throw new Error('transient');
        succeeded();
        return {};
      },
      onError: (_k, _e, retry) => delays.push(retry),
    });
    void rec.enqueue('prod');
    await done;
    expect(delays).toEqual([5, 10, 20]);
    await rec.stop();
  });

  it('requeues after the interval a successful reconcile asks for', async () => {
    let n = 0;
    let twice!: () => void;
    const done = new Promise<void>((r) => (twice = r));
    const rec = new Reconciler({
      jitter: 0,
      reconcile: async () => {
        if (++n === 2) twice();
        return { requeueAfterMs: 5 };
      },
      onError: () => undefined,
    });
    void rec.enqueue('dev');
    await done;
    await rec.stop();
    expect(n).toBeGreaterThanOrEqual(2);
  });
});
