import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { rateLimit } from './rate-limit.js';

describe('rateLimit', () => {
  it('allows a burst, then the sustained rate, per client', async () => {
    let now = 0;
    const app = new Hono();
    app.use('*', rateLimit({ burst: 2, perSecond: 1, keyOf: (c) => c.req.header('x-client') ?? '?', now: () => now }));
    app.post('/hook', (c) => c.text('ok'));
    const hit = async (client: string) => (await app.request('/hook', { method: 'POST', headers: { 'x-client': client } })).status;
    expect([await hit('a'), await hit('a'), await hit('a')]).toEqual([200, 200, 429]);
    expect(await hit('b')).toBe(200);
    now += 1000;
    expect([await hit('a'), await hit('a')]).toEqual([200, 429]);
    const res = await app.request('/hook', { method: 'POST', headers: { 'x-client': 'a' } });
    expect(res.headers.get('retry-after')).toBe('1');
    expect((await res.json()).message).toMatch(/^rate limit exceeded/);
  });
});
