import { describe, expect, it } from 'vitest';
import { Semaphore } from './limit.js';

describe('Semaphore', () => {
  it('runs at most n tasks at once, in order, and passes errors through', async () => {
    const s = new Semaphore(2);
    let active = 0;
    let peak = 0;
    const order: number[] = [];
    const gates: (() => void)[] = [];
    const task = (i: number) =>
      s.run(async () => {
        active++;
        peak = Math.max(peak, active);
        order.push(i);
        await new Promise<void>((r) => gates.push(r));
        active--;
        if (i === 3) throw new Error('boom');
        return i;
      });
    const all = [0, 1, 2, 3, 4].map((i) => task(i).catch((e: Error) => e.message));
    while (order.length < 5) {
      await new Promise((r) => setImmediate(r));
      gates.shift()?.();
    }
    gates.forEach((g) => g());
    expect(await Promise.all(all)).toEqual([0, 1, 2, 'boom', 4]);
    expect(peak).toBe(2);
    expect(order).toEqual([0, 1, 2, 3, 4]);
  });
});
