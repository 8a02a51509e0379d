import { describe, expect, test } from 'vitest';
import { readCookie } from './forward.js';
import type { BackendSpec, RouteTable, TrafficSplit } from './protocol.js';
import { routeTableSchema } from './protocol.js';
import { RoutingTable, Split } from './routes.js';
import { RouteCounters } from './stats.js';

function b(id: string, group: string, port: number): BackendSpec {
  return { id, url: `http://127.0.0.1:${port}`, version: group, group };
}

function table(split?: TrafficSplit): RouteTable {
  return { routes: [{ key: 'prod/web', port: 8080, backends: [b('s1', 'stable', 1001), b('s2', 'stable', 1002), b('c1', 'canary', 1003)], ...(split ? { split } : {}) }] };
}

describe('Split', () => {
  test('shares a fixed number of requests exactly by weight, interleaved', () => {
    const s = new Split({ weights: { stable: 80, canary: 20 } });
    const picks = Array.from({ length: 100 }, () => s.next());
    expect(picks.filter((g) => g === 'canary')).toHaveLength(20);
    // Interleaved: never more than four stable picks in a row at 80/20.
    expect(picks.join(',')).not.toContain('stable,stable,stable,stable,stable');
  });

  test('leaves out groups without weight', () => {
    const s = new Split({ weights: { blue: 0, green: 100 } });
    expect(new Set(Array.from({ length: 10 }, () => s.next()))).toEqual(new Set(['green']));
    expect(s.admits('blue')).toBe(false);
    expect(s.admits('green')).toBe(true);
    expect(new Split({ weights: {} }).next()).toBeUndefined();
  });
});

describe('Route.pick with a group', () => {
  test('prefers backends of the group and falls back to the others', () => {
    const t = new RoutingTable();
    t.apply(table({ weights: { stable: 1, canary: 1 } }));
    const r = t.get('prod/web')!;
    const [s1, s2, c1] = r.backends;
    expect(Array.from({ length: 3 }, () => r.pick(null, 'canary')!.id)).toEqual(['c1', 'c1', 'c1']);
    expect(new Set(Array.from({ length: 4 }, () => r.pick(null, 'stable')!.id))).toEqual(new Set(['s1', 's2']));
    expect(r.pick([c1], 'canary')!.group).toBe('stable');
    expect(r.pick([s1, s2, c1], 'canary')).toBeUndefined();
  });

  test('keeps the rotation across table updates that leave the weights alone, and drops it with them', () => {
    const t = new RoutingTable();
    t.apply(table({ weights: { stable: 50, canary: 50 } }));
    const split = t.get('prod/web')!.split;
    t.apply(table({ weights: { stable: 50, canary: 50 } }));
    expect(t.get('prod/web')!.split).toBe(split);
    t.apply(table());
    expect(t.get('prod/web')!.split).toBeUndefined();
  });
});

describe('traffic split protocol', () => {
  test('accepts weights and a cookie name, refuses a bad cookie name', () => {
    expect(routeTableSchema.safeParse(table({ weights: { stable: 90, canary: 10 }, stickyCookie: 'keelson-web' })).success).toBe(true);
    const bad = routeTableSchema.safeParse(table({ weights: { stable: 1 }, stickyCookie: 'a b;' }));
    expect(bad.success).toBe(false);
  });

  test('counts requests per group', () => {
    const c = new RouteCounters();
    c.record({ version: '1', group: 'g1' }, 200, 0.01);
    c.record({ version: '1', group: 'g2' }, 500, 0.01);
    c.record(undefined, 503, 0.01);
    const v = c.view('prod/web');
    expect(v.groups.map((g) => [g.group, g.requests, g.errors5xx])).toEqual([
      ['g1', 1, 0],
      ['g2', 1, 1],
    ]);
    expect(v.versions).toEqual([expect.objectContaining({ version: '1', requests: 2 })]);
  });
});

describe('readCookie', () => {
  test('finds a cookie among others', () => {
    expect(readCookie('a=1; keelson-web=canary; b=2', 'keelson-web')).toBe('canary');
    expect(readCookie('a=1', 'keelson-web')).toBeUndefined();
    expect(readCookie(undefined, 'x')).toBeUndefined();
  });
});
