import { describe, expect, it } from 'vitest';
import { ManualSyncs } from './manual-syncs.js';

describe('ManualSyncs', () => {
  it('merges concurrent requests of one environment: every app honoured, force sticky to its apps', async () => {
    const q = new ManualSyncs();
    const one = q.request('dev', ['one'], { force: true });
    const two = q.request('dev', ['two']);
    const other = q.request('prod', ['web']);
    const taken = q.take('dev')!;
    expect([...taken.apps].sort()).toEqual(['one', 'two']);
    expect([...taken.force]).toEqual(['one']);
    expect(q.take('dev')).toBeUndefined();
    taken.settle({ result: 'Succeeded', message: 'one created, two created' });
    taken.settle({ result: 'Failed', message: 'ignored: settled once' });
    expect(await one).toEqual({ result: 'Succeeded', message: 'one created, two created' });
    expect(await two).toEqual({ result: 'Succeeded', message: 'one created, two created' });
    q.cancelAll('engine stopping');
    expect(await other).toEqual({ result: 'Unchanged', message: 'engine stopping' });
  });

  it('a request made after a reconcile took the queue waits for the next one', async () => {
    const q = new ManualSyncs();
    void q.request('dev', ['one']);
    const first = q.take('dev')!;
    const later = q.request('dev', ['two'], { force: true });
    first.settle({ result: 'Unchanged', message: 'first' });
    const second = q.take('dev')!;
    expect([...second.apps]).toEqual(['two']);
    expect([...second.force]).toEqual(['two']);
    second.settle({ result: 'Failed', message: 'second' });
    expect(await later).toEqual({ result: 'Failed', message: 'second' });
  });
});
