import { describe, expect, it } from 'vitest';
import type { DesiredApp, DesiredEnvironment } from '../core/model.js';
import { isExpired, requeueBeforeExpiry, effectiveEnvironment } from './expiry.js';
import { diffEnvironments, formatEnvDiff, sameApartFromPlacement } from './diff-envs.js';

const app = (name: string, env: string, o: Partial<DesiredApp> = {}): DesiredApp => ({
  name,
  env,
  version: '1.0.0',
  artifact: { path: `releases/${name}` },
  command: ['node', 'server.js'],
  vars: {},
  replicas: 1,
  dependsOn: [],
  progressDeadlineSeconds: 60,
  terminationGracePeriodSeconds: 30,
  source: { file: 'a.yaml', line: 1, col: 1 },
  ...o,
});
const env = (name: string, apps: DesiredApp[], expiresAt?: string): DesiredEnvironment => ({ name, target: { local: {} }, apps, source: { file: 'e.yaml', line: 1, col: 1 }, ...(expiresAt ? { expiresAt } : {}) });

describe('diff-envs', () => {
  it('reports versions, replicas, config and presence; ports alone keep apps identical', () => {
    const a = env('staging', [app('web', 'staging', { version: '1.1.0', port: 8080, vars: { LOG: 'debug', X: '1' } }), app('db', 'staging', { port: 5000 }), app('only-a', 'staging')]);
    const b = env('prod', [app('web', 'prod', { replicas: 3, port: 9080, vars: { X: '1', Y: '2' } }), app('db', 'prod', { port: 6000 })]);
    const d = diffEnvironments(a, b);
    expect(d.differences).toEqual([
      { app: 'db', field: 'port', a: '5000', b: '6000' },
      { app: 'only-a', field: 'presence', a: true, b: false },
      { app: 'web', field: 'version', a: '1.1.0', b: '1.0.0' },
      { app: 'web', field: 'replicas', a: '1', b: '3' },
      { app: 'web', field: 'port', a: '8080', b: '9080' },
      { app: 'web', field: 'env', key: 'LOG', a: 'debug', b: null },
      { app: 'web', field: 'env', key: 'Y', a: null, b: '2' },
    ]);
    expect(d.identical).toEqual(['db']);
    expect(sameApartFromPlacement(d)).toBe(false);
    expect(formatEnvDiff(d)).toContain('web     env LOG   debug    (unset)');
    expect(sameApartFromPlacement(diffEnvironments(env('a', [app('db', 'a', { port: 1 })]), env('b', [app('db', 'b', { port: 2 })])))).toBe(true);
  });
});

describe('expiry', () => {
  it('an expired environment runs nothing and wakes the loop at its expiry', () => {
    const e = env('pr-1', [app('web', 'pr-1')], '2030-01-01T00:00:00.000Z');
    const before = Date.parse('2029-12-31T23:59:00Z');
    expect(isExpired(e, before)).toBe(false);
    expect(effectiveEnvironment(e, before).apps).toHaveLength(1);
    expect(requeueBeforeExpiry(e, 600_000, before)).toBe(60_050);
    expect(requeueBeforeExpiry(e, 10_000, before)).toBe(10_000);
    const after = Date.parse('2030-01-01T00:00:01Z');
    expect(isExpired(e, after)).toBe(true);
    expect(effectiveEnvironment(e, after).apps).toEqual([]);
    expect(isExpired(env('prod', []))).toBe(false);
  });
});
