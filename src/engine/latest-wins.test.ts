import { describe, expect, it } from 'vitest';
import { LatestWins } from './latest-wins.js';

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return { open, opened };
}

describe('LatestWins', () => {
  it('runs one job at a time and collapses waiting requests into the newest one', async () => {
    const ran: string[] = [];
    const first = gate();
    const q = new LatestWins<string>(async (item) => {
      ran.push(`start ${item}`);
      if (item === 'a') await first.opened;
      ran.push(`end ${item}`);
    });
    const a = q.request('a');
    const b = q.request('b');
    const c = q.request('c');
    expect(q.pending).toBe('c');
    first.open();
    await Promise.all([a, b, c]);
    expect(ran).toEqual(['start a', 'end a', 'start c', 'end c']);
    expect(q.pending).toBeUndefined();
  });

  it('keeps going after a job fails, and settled() waits for what was requested', async () => {
    const ran: string[] = [];
    const q = new LatestWins<string>(async (item) => {
      if (item === 'bad') throw new Error('boom');
      ran.push(item);
    });
    void q.request('bad');
    void q.request('good');
    await q.settled();
    expect(ran).toEqual(['good']);
  });
});
