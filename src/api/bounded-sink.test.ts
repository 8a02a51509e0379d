import { describe, expect, it } from 'vitest';
import { BoundedSink } from './bounded-sink.js';

describe('BoundedSink', () => {
  it('writes chunks one at a time, in order, each after the previous write finished', async () => {
    const written: string[] = [];
    let release!: () => void;
    let blocked = new Promise<void>((r) => (release = r));
    const sink = new BoundedSink(async (c) => {
      written.push(c);
      await blocked;
    }, { maxBytes: 100, onOverflow: () => undefined });
    sink.push('a');
    sink.push('b');
    sink.push('c');
    expect(written).toEqual(['a']); // b and c wait for the client
    expect(sink.pendingBytes).toBe(3);
    blocked = Promise.resolve();
    release();
    await new Promise((r) => setImmediate(r));
    expect(written).toEqual(['a', 'b', 'c']);
    expect(sink.pendingBytes).toBe(0);
  });

  it('drops a client that falls more than maxBytes behind, and buffers nothing more for it', () => {
    const overflows: number[] = [];
    const sink = new BoundedSink(() => new Promise(() => undefined), { maxBytes: 10, onOverflow: (n) => overflows.push(n) });
    expect(sink.push('12345')).toBe(true);
    expect(sink.push('67890')).toBe(true);
    expect(sink.push('x')).toBe(false);
    expect(overflows).toEqual([11]);
    expect(sink.isDropped).toBe(true);
    expect(sink.push('more')).toBe(false);
    expect(sink.pendingBytes).toBe(0);
    expect(overflows).toHaveLength(1);
  });
});
