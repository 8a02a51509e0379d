import { describe, expect, it } from 'vitest';
import { routeDocs } from './openapi.js';

describe('the route table', () => {
  it('lists each route (method and path) once: a later entry would silently decide its role', () => {
    const seen = new Map<string, number>();
    for (const r of routeDocs) seen.set(`${r.method} ${r.path}`, (seen.get(`${r.method} ${r.path}`) ?? 0) + 1);
    expect([...seen].filter(([, n]) => n > 1).map(([k]) => k)).toEqual([]);
  });
});
