import { describe, expect, test } from 'vitest';
import type { BackendSpec, RouteTable } from './protocol.js';
import { resolveRoute, RoutingTable } from './routes.js';
import { RequestCounter } from './stats.js';

function b(id: string, version = '1', port = 1000 + id.charCodeAt(0)): BackendSpec {
  return { id, url: `http://127.0.0.1:${port}`, version };
}

function one(backends: BackendSpec[], port = 8080): RouteTable {
  return { routes: [{ key: 'prod/web', port, backends }] };
}

describe('Route.pick', () => {
  test('goes round robin when nothing is in flight', () => {
    const t = new RoutingTable();
    t.apply(one([b('a'), b('b'), b('c')]));
    const r = t.get('prod/web')!;
    expect(Array.from({ length: 6 }, () => r.pick(null)!.id)).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
  });

  test('prefers the backend with the fewest requests in flight', () => {
    const t = new RoutingTable();
    t.apply(one([b('a'), b('b')]));
    const r = t.get('prod/web')!;
    const [a] = r.backends;
    a.acquire();
    a.acquire();
    expect(Array.from({ length: 3 }, () => r.pick(null)!.id)).toEqual(['b', 'b', 'b']);
  });

  test('skips backends already tried and avoids one that just refused a connection', () => {
    const t = new RoutingTable();
    t.apply(one([b('a'), b('b')]));
    const r = t.get('prod/web')!;
    const [a, bb] = r.backends;
    expect(r.pick([a])).toBe(bb);
    expect(r.pick([a, bb])).toBeUndefined();
    a.markDown(Date.now());
    expect(Array.from({ length: 4 }, () => r.pick(null)!.id)).toEqual(['b', 'b', 'b', 'b']);
    // When every backend is down, still try one rather than fail outright.
    bb.markDown(Date.now());
    expect(r.pick(null)).toBeDefined();
  });

  test('returns nothing for a route without backends', () => {
    const t = new RoutingTable();
    t.apply(one([]));
    expect(t.get('prod/web')!.pick(null)).toBeUndefined();
  });
});

describe('RoutingTable.apply', () => {
  test('keeps counters of backends that stay and drains those that leave', () => {
    const t = new RoutingTable();
    t.apply(one([b('a'), b('b')]));
    const [a, bb] = t.get('prod/web')!.backends;
    a.acquire();
    bb.acquire();
    bb.release(false);

    t.apply(one([b('b', '2'), b('c')]));
    const r = t.get('prod/web')!;
    expect(r.backends.map((x) => x.id)).toEqual(['b', 'c']);
    expect(r.backends[0]).toBe(bb);
    expect(bb.version).toBe('2');
    expect(a.draining).toBe(true);
    const view = t.view((x) => ({ key: x.key, port: x.port, listening: true }))[0];
    expect(view.backends.map((x) => [x.id, x.draining, x.inflight])).toEqual([
      ['b', false, 0],
      ['c', false, 0],
      ['a', true, 1],
    ]);

    a.release(false);
    expect(t.view((x) => ({ key: x.key, port: x.port, listening: true }))[0].backends.map((x) => x.id)).toEqual(['b', 'c']);
  });

  test('treats a backend whose URL changed as a new one', () => {
    const t = new RoutingTable();
    t.apply(one([b('a', '1', 2000)]));
    const old = t.get('prod/web')!.backends[0];
    t.apply(one([b('a', '1', 2001)]));
    expect(t.get('prod/web')!.backends[0]).not.toBe(old);
    expect(old.draining).toBe(true);
  });

  test('groups routes by port and host and reports conflicts', () => {
    const t = new RoutingTable();
    const { ports, conflicts } = t.apply({
      routes: [
        { key: 'prod/web', port: 80, backends: [] },
        { key: 'prod/api', port: 80, host: 'API.example', backends: [] },
        { key: 'prod/web2', port: 80, backends: [] },
        { key: 'prod/other', port: 81, backends: [] },
      ],
    });
    expect([...ports.keys()].sort()).toEqual([80, 81]);
    const p80 = ports.get(80)!;
    expect(resolveRoute(p80, 'api.example:80')?.key).toBe('prod/api');
    expect(resolveRoute(p80, 'else.example')?.key).toBe('prod/web');
    expect(resolveRoute(p80, undefined)?.key).toBe('prod/web');
    expect(conflicts).toEqual(new Map([['prod/web2', 'port 80 is already routed to prod/web']]));
  });

  test('drops removed routes and drains their backends', () => {
    const t = new RoutingTable();
    t.apply(one([b('a')]));
    const a = t.get('prod/web')!.backends[0];
    a.acquire();
    t.apply({ routes: [] });
    expect(t.all()).toEqual([]);
    expect(t.inflightOf(new Set(['a']))).toBe(1);
  });
});

describe('RoutingTable.waitIdle', () => {
  test('resolves when the last request of the backend finishes', async () => {
    const t = new RoutingTable();
    t.apply(one([b('a'), b('b')]));
    const [a, bb] = t.get('prod/web')!.backends;
    a.acquire();
    bb.acquire();
    const waiting = t.waitIdle(['a'], 60_000);
    t.apply(one([b('b')]));
    a.release(false);
    expect(await waiting).toEqual({ drained: true, inflight: 0 });
    expect(bb.inflight).toBe(1);
  });

  test('gives up after the timeout, reporting what is still in flight', async () => {
    const t = new RoutingTable();
    t.apply(one([b('a')]));
    t.get('prod/web')!.backends[0].acquire();
    expect(await t.waitIdle(['a'], 1)).toEqual({ drained: false, inflight: 1 });
  });
});

describe('RequestCounter', () => {
  test('counts 5xx and fills cumulative latency buckets', () => {
    const c = new RequestCounter();
    c.record(200, 0.001);
    c.record(503, 0.3);
    c.record(200, 42);
    const v = c.view();
    expect(v).toMatchObject({ requests: 3, errors5xx: 1, latency: { count: 3 } });
    expect(v.latency.sumSeconds).toBeCloseTo(42.301);
    const at = (le: string) => v.latency.buckets.find((x) => x.le === le)!.count;
    expect([at('0.005'), at('0.25'), at('0.5'), at('10'), at('+Inf')]).toEqual([1, 1, 2, 2, 3]);
  });
});
