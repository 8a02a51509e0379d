import { describe, expect, test } from 'vitest';
import { dependencyOrder, findCycles } from './graph.js';

const graph = (edges: Record<string, string[]>) => new Map(Object.entries(edges));

describe('findCycles', () => {
  test('finds each cycle once, starting at its alphabetically first app', () => {
    const g = graph({ c: ['a'], a: ['b'], b: ['c', 'x'], x: [], s: ['s'], t: ['u'], u: ['t', 'a'], ok: ['a'] });
    expect(findCycles(g)).toEqual([
      ['a', 'b', 'c', 'a'],
      ['s', 's'],
      ['t', 'u', 't'],
    ]);
  });

  test('gives the shortest way back inside a component', () => {
    expect(findCycles(graph({ a: ['b', 'd'], b: ['c'], c: ['a'], d: ['a'] }))).toEqual([['a', 'd', 'a']]);
  });

  test('ignores unknown names and acyclic graphs', () => {
    expect(findCycles(graph({ a: ['b', 'ghost'], b: [] }))).toEqual([]);
  });

  test('handles long chains without recursion trouble', () => {
    const n = 5000;
    const g = new Map(Array.from({ length: n }, (_, i) => [`a${i}`, i + 1 < n ? [`a${i + 1}`] : ['a0']]));
    expect(findCycles(g)[0]).toHaveLength(n + 1);
    g.set(`a${n - 1}`, []);
    expect(findCycles(g)).toEqual([]);
    expect(dependencyOrder([...g.keys()], g).slice(0, 2)).toEqual([`a${n - 1}`, `a${n - 2}`]);
  });
});

describe('dependencyOrder', () => {
  test('puts dependencies first, then sorts by name', () => {
    const g = graph({ web: ['api', 'cache'], api: ['db'], db: [], cache: [], admin: ['db'] });
    expect(dependencyOrder(['web', 'api', 'db', 'cache', 'admin'], g)).toEqual(['cache', 'db', 'admin', 'api', 'web']);
  });

  test('ignores dependencies outside the given names and terminates on cycles', () => {
    expect(dependencyOrder(['b', 'a'], graph({ a: ['zzz'], b: ['a'] }))).toEqual(['a', 'b']);
    expect(dependencyOrder(['a', 'b'], graph({ a: ['b'], b: ['a'] })).sort()).toEqual(['a', 'b']);
  });
});
