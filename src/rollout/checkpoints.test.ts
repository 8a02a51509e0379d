import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Store } from '../store/store.js';
import { RolloutCheckpoints as KubernetesCheckpoints } from '../targets/kubernetes/checkpoints.js';
import { LocalRolloutCheckpoints } from '../targets/local/rollout-state.js';
import { RolloutCheckpoints, checkpointKey } from './checkpoints.js';

describe('rollout checkpoints: one record per app, every strategy, both targets', () => {
  const dirs: string[] = [];
  const open = (dir = mkdtempSync(join(tmpdir(), 'keelson-checkpoints-'))) => {
    dirs.push(dir);
    return { dir, store: new Store(dir) };
  };
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));
  const checkpoint = { step: 2, weight: 50, full: false };

  it('survives an engine restart, is listed, and is gone once cleared', () => {
    const { dir, store } = open();
    const local = new RolloutCheckpoints(store, { target: 'local' });
    local.save({ env: 'dev', app: 'web', strategy: 'canary', revision: 'r1', from: '1', to: '2', template: 't2', plan: 'p', checkpoint });
    local.save({ env: 'dev', app: 'api', strategy: 'rolling', revision: 'r1', from: '1', to: '2', template: 't3', plan: '', checkpoint: { step: 0, weight: 0, full: false } });
    store.close();
    const again = open(dir).store;
    const read = new RolloutCheckpoints(again, { target: 'local' });
    expect(read.get('dev', 'web')).toMatchObject({ env: 'dev', app: 'web', target: 'local', strategy: 'canary', template: 't2', checkpoint });
    expect(read.all().map((r) => `${r.app}:${r.strategy}`)).toEqual(['web:canary', 'api:rolling']);
    read.clear('dev', 'web');
    expect(new RolloutCheckpoints(again, { target: 'local' }).all().map((r) => r.app)).toEqual(['api']);
    expect(again.getKv(checkpointKey('dev', 'web'))).toBe('');
    again.close();
  });

  it('each target reads only its own records', () => {
    const { store } = open();
    new KubernetesCheckpoints(store).save({ env: 'prod', app: 'web', strategy: 'blueGreen', template: 'k', plan: 'p', checkpoint });
    expect(new RolloutCheckpoints(store, { target: 'local' }).get('prod', 'web')).toBeUndefined();
    expect(new RolloutCheckpoints(store, { target: 'local' }).all()).toEqual([]);
    expect(new KubernetesCheckpoints(store).get('prod', 'web')).toMatchObject({ target: 'kubernetes', strategy: 'blueGreen' });
    store.close();
  });

  it('an upgrade resumes a Kubernetes rollout recorded under the old key', () => {
    const { store } = open();
    store.setKv('kubernetes.rollout/prod/web', JSON.stringify({ template: 'k', plan: 'p', checkpoint, strategy: 'canary', revision: 'r0' }));
    const cps = new KubernetesCheckpoints(store);
    expect(cps.get('prod', 'web')).toMatchObject({ env: 'prod', app: 'web', target: 'kubernetes', template: 'k', plan: 'p', checkpoint, strategy: 'canary' });
    // Moved: the new key holds it, the old one is empty, and clearing it leaves nothing behind.
    expect(store.getKv('kubernetes.rollout/prod/web')).toBe('');
    expect(JSON.parse(store.getKv(checkpointKey('prod', 'web'))!)).toMatchObject({ template: 'k' });
    cps.clear('prod', 'web');
    expect(new KubernetesCheckpoints(store).get('prod', 'web')).toBeUndefined();
    store.close();
  });

  it("an upgrade resumes a local rollout recorded in the earlier versions' rollouts table", () => {
    const { store } = open();
    const spec = { env: 'dev', name: 'web', version: '2.0.0' };
    store.putRollout('dev', 'web', {
      env: 'dev',
      app: 'web',
      revision: 'r1',
      strategy: 'canary',
      from: '1.0.0',
      to: '2.0.0',
      plan: 'p',
      stable: { template: 's' },
      canary: { template: 'c', releaseId: 'web-2.0.0-abc', spec },
      split: { weights: { s: 50, c: 50 }, stickyCookie: 'keelson-dev-web' },
      checkpoint,
      updatedAt: '2026-01-01T00:00:00.000Z',
    });
    const cps = new LocalRolloutCheckpoints(store);
    expect(store.rollouts()).toEqual([]);
    expect(cps.all()).toEqual([
      {
        env: 'dev',
        app: 'web',
        target: 'local',
        revision: 'r1',
        strategy: 'canary',
        from: '1.0.0',
        to: '2.0.0',
        template: 'c',
        plan: 'p',
        checkpoint,
        detail: { stable: 's', releaseId: 'web-2.0.0-abc', spec, split: { weights: { s: 50, c: 50 }, stickyCookie: 'keelson-dev-web' } },
        updatedAt: '2026-01-01T00:00:00.000Z',
      },
    ]);
    expect(new LocalRolloutCheckpoints(store).get('dev', 'web')?.template).toBe('c');
    store.close();
  });

  it('an unreadable record counts as none', () => {
    const { store } = open();
    store.setKv(checkpointKey('dev', 'web'), '{not json');
    store.setKv('rollout/index', JSON.stringify([['dev', 'web']]));
    const cps = new RolloutCheckpoints(store, { target: 'local' });
    expect(cps.get('dev', 'web')).toBeUndefined();
    expect(cps.all()).toEqual([]);
    store.close();
  });
});
