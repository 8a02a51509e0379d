import { describe, expect, it } from 'vitest';
import { describeProgress } from './progress.js';
import { readSse } from './sse.js';

async function* chunks(...parts: string[]) {
  for (const p of parts) yield new TextEncoder().encode(p);
}

describe('readSse', () => {
  it('parses events split across chunks, with ids, comments and multi-line data', async () => {
    const out = [];
    for await (const m of readSse(chunks('event: sync.started\nid: 1\nda', 'ta: {"a":1}\n\n: comment\n\nevent: x\r\ndata: l1\r\ndata: l2\r\n\r\n'))) out.push(m);
    expect(out).toEqual([
      { event: 'sync.started', id: '1', data: '{"a":1}' },
      { event: 'x', data: 'l1\nl2' },
    ]);
  });
});

describe('describeProgress', () => {
  it('turns the events of one environment into progress lines', () => {
    expect(describeProgress({ type: 'sync.started', env: 'dev', revision: 'abcdef123', changes: 2 }, 'dev')).toBe('sync started at abcdef1: 2 changes');
    expect(describeProgress({ type: 'app.changed', env: 'dev', app: 'web', action: 'configured', message: 'rolled out 1 → 2' }, 'dev')).toBe('  web configured: rolled out 1 → 2');
    expect(describeProgress({ type: 'sync.completed', env: 'dev', result: 'Succeeded', durationMs: 1234 }, 'dev')).toBe('sync Succeeded in 1.2 s');
    expect(describeProgress({ type: 'sync.started', env: 'prod', revision: 'x', changes: 1 }, 'dev')).toBeUndefined();
  });
});
