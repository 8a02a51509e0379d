import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Store } from './store.js';

describe('Store', () => {
  const dirs: string[] = [];
  const open = (dir = mkdtempSync(join(tmpdir(), 'keelson-store-'))) => {
    dirs.push(dir);
    return { dir, store: new Store(dir) };
  };
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('keeps sync history across restarts and filters it by app', () => {
    const { dir, store } = open();
    const base = { env: 'dev', revision: 'r1', startedAt: new Date().toISOString(), durationMs: 12, result: 'Succeeded' as const, summary: 's', message: 'm' };
    store.addSync({ ...base, changes: [{ app: 'web', action: 'created' }] });
    store.addSync({ ...base, revision: 'r2', changes: [{ app: 'worker', action: 'created' }] });
    store.close();
    const again = new Store(dir);
    expect(again.history({ env: 'dev' }).map((s) => s.revision)).toEqual(['r2', 'r1']);
    expect(again.history({ env: 'dev', app: 'web' }).map((s) => s.revision)).toEqual(['r1']);
    again.close();
  });

  it('records inventory per environment and forgets pruned apps', () => {
    const { store } = open();
    const row = { env: 'dev', app: 'web', revision: 'r1', specHash: 'h', version: '1', appliedAt: 'now', spec: { a: 1 } };
    store.putInventory(row);
    store.putInventory({ ...row, env: 'prod' });
    expect(store.inventory('dev')).toEqual([row]);
    store.deleteInventory('dev', 'web');
    expect(store.inventory('dev')).toEqual([]);
    expect(store.inventory()).toHaveLength(1);
    store.close();
  });

  it('keeps a rollout under way across restarts until it is deleted', () => {
    const { dir, store } = open();
    store.putRollout('dev', 'web', { step: 2, weight: 25 });
    store.putRollout('dev', 'web', { step: 5, weight: 50 });
    store.close();
    const again = new Store(dir);
    expect(again.rollouts()).toEqual([{ env: 'dev', app: 'web', state: { step: 5, weight: 50 } }]);
    again.deleteRollout('dev', 'web');
    expect(again.rollouts()).toEqual([]);
    again.close();
  });
});
