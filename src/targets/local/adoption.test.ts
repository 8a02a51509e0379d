import { describe, expect, it } from 'vitest';
import type { DesiredApp } from '../../core/model.js';
import type { InventoryRow, ReplicaRow } from '../../store/store.js';
import { adoptionPlan } from './adoption.js';
import type { RolloutRecord } from './rollout-state.js';
import { templateHash } from './spec-hash.js';

const spec = (version: string) => ({ env: 'dev', name: 'web', version, command: ['node', 'server.js'], replicas: 2 }) as unknown as DesiredApp;
const v1 = spec('1.0.0');
const v2 = spec('2.0.0');
const inventory = (s: DesiredApp): InventoryRow => ({ env: 'dev', app: 'web', revision: 'r1', specHash: templateHash(s), version: s.version, appliedAt: 'now', spec: s });
let n = 0;
const row = (s: DesiredApp, app = 'web'): ReplicaRow => ({
  id: `${app}-${++n}`,
  env: 'dev',
  app,
  pid: 1000 + n,
  startTime: '1',
  port: 3000 + n,
  releaseId: `${s.version}-rel`,
  releaseDir: `/releases/${s.version}`,
  releaseHash: 'h',
  version: s.version,
  specHash: templateHash(s),
  logPath: `/logs/${n}.log`,
  startedAt: 0,
});

describe('adoption plan after an engine restart', () => {
  it('stops replicas of apps no longer in the inventory; the app is its inventory spec with the release of its replicas of it', () => {
    const rows = [row(v2), row(v1), row(v1, 'gone')];
    const plan = adoptionPlan([inventory(v1)], rows, []);
    expect(plan.stale.map((r) => r.app)).toEqual(['gone']);
    expect(plan.apps.get('dev/web')).toMatchObject({ template: templateHash(v1), release: { id: '1.0.0-rel', dir: '/releases/1.0.0' }, revision: 'r1', rollingOut: false });
    // A replica of another template (a rolling update stopped midway) keeps its own version for the next reconcile.
    expect(plan.replicas.map((r) => r.spec.version)).toEqual(['2.0.0', '1.0.0']);
    expect(plan.traffic.size).toBe(0);
  });

  it("an interrupted canary's new set keeps its own spec, and the proxy its weights", () => {
    const split = { weights: { a: 50, b: 50 }, stickyCookie: 'keelson-dev-web' };
    const record = { env: 'dev', app: 'web', target: 'local', strategy: 'canary', revision: 'r2', from: '1.0.0', to: '2.0.0', template: templateHash(v2), plan: 'p', checkpoint: { step: 1, weight: 50, full: false }, detail: { stable: templateHash(v1), releaseId: '2.0.0-rel', spec: v2, split } } as RolloutRecord;
    const plan = adoptionPlan([inventory(v1)], [row(v1), row(v2)], [record]);
    expect(plan.replicas.map((r) => r.spec)).toEqual([v1, v2]);
    expect(plan.traffic.get('dev/web')).toEqual(split);
    // A rolling update has no weights to restore.
    expect(adoptionPlan([inventory(v1)], [row(v1), row(v2)], [{ ...record, strategy: 'rolling' }]).traffic.size).toBe(0);
  });

  it('a rollout that finished before the engine recorded it: the new set is the app; a rolling update that replaced every replica keeps the stable release', () => {
    const rolling = { env: 'dev', app: 'web', target: 'local', strategy: 'rolling', revision: 'r2', from: '1.0.0', to: '2.0.0', template: templateHash(v2), plan: '', checkpoint: { step: 0, weight: 0, full: false }, detail: { stable: templateHash(v1), stableRelease: { id: '1.0.0-rel', dir: '/releases/1.0.0', hash: 'h1' }, releaseId: '2.0.0-rel', spec: v2, split: { weights: {} } } } as RolloutRecord;
    const finished = { ...rolling, checkpoint: { ...rolling.checkpoint, finished: true } };
    const done = adoptionPlan([inventory(v1)], [row(v2), row(v2)], [finished]);
    expect(done.apps.get('dev/web')).toMatchObject({ template: templateHash(v2), spec: v2, release: { id: '2.0.0-rel' }, revision: 'r2' });
    expect(done.replicas.map((r) => r.spec)).toEqual([v2, v2]);
    // Not finished: the app is still the stable set, to be brought back from its own release, not the new one's.
    const midway = adoptionPlan([inventory(v1)], [row(v2), row(v2)], [rolling]);
    expect(midway.apps.get('dev/web')).toMatchObject({ template: templateHash(v1), release: { id: '1.0.0-rel', dir: '/releases/1.0.0' } });
  });
});
