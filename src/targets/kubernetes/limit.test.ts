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

describe('Semaphore tickets', () => {
  it('lets the waiting task with the earliest ticket go first, ties in arrival order', async () => {
    const s = new Semaphore(1);
    const order: string[] = [];
    let release!: () => void;
    const first = s.run(() => new Promise<void>((r) => (release = r)));
    const early = s.ticket();
    const late = s.ticket();
    // Queued while the one slot is busy: two of the later-started app's writes, then the earlier-started app's two.
    const all = [
      s.run(async () => void order.push('late 1'), late),
      s.run(async () => void order.push('late 2'), late),
      s.run(async () => void order.push('early 1'), early),
      s.run(async () => void order.push('no ticket')),
      s.run(async () => void order.push('early 2'), early),
    ];
    release();
    await Promise.all([first, ...all]);
    expect(order).toEqual(['early 1', 'early 2', 'late 1', 'late 2', 'no ticket']);
  });

  it('keeps every slot busy and hands each freed slot to one waiter', async () => {
    const s = new Semaphore(3);
    let active = 0;
    let peak = 0;
    const done: number[] = [];
    const tasks = Array.from({ length: 40 }, (_, i) =>
      s.run(async () => {
        active++;
        peak = Math.max(peak, active);
        await new Promise((r) => setTimeout(r, (i * 7) % 5));
        active--;
        done.push(i);
      }, 40 - i),
    );
    await Promise.all(tasks);
    expect(peak).toBe(3);
    expect(done.sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i));
  });
});
