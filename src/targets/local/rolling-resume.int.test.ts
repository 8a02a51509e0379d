import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startEngine, type EngineHarness } from '../../../test/engine-harness.js';
import { appServer, commitAll, freePort, gatedServer, waitFor, webApp, webEnvironment, writeTree } from '../../../test/helpers.js';
import type { Stamped } from '../../core/events.js';
import { freshBody } from './proxy/testing.js';
import { RolloutCheckpoints } from '../../rollout/checkpoints.js';
import type { Store } from '../../store/store.js';

/** The local rollout checkpoints in the store, read afresh (not the engine's cache). */
const storedRollouts = (store: Store) => new RolloutCheckpoints(store, { target: 'local' }).all();

/**
 * A rolling update an engine stop interrupted (some replicas replaced, some not) converges to one version with the
 * next engine: it finishes when the app still goes to the new version, and every replica goes back to the old one
 * when a revert was committed meanwhile. Real processes through the real proxy; the engine stops as on SIGTERM
 * (EngineHarness.restart), its replicas keep running.
 */
describe('a rolling update interrupted by an engine stop', { timeout: 240_000 }, () => {
  let h: EngineHarness | undefined;
  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });


  async function interruptedRolling() {
    const port = await freePort();
    const events: Stamped[] = [];
    h = await startEngine(
      {
        'apps/web.yaml': webApp(port, { replicas: 3, rollout: '    progressDeadlineSeconds: 60' }),
        'environments/dev.yaml': webEnvironment('1.0.0'),
        'releases/1.0.0/server.js': appServer('1.0.0'),
      },
      { prefix: 'keelson-rolling-', beforeStart: (x) => x.bus.subscribe((e) => events.push(e)) },
    );
    const harness = h;
    const gate = join(harness.dir, 'gate');
    writeTree(harness.dir, { gate: '' });
    // The first replica of 2.0.0 may become ready; the second one is held back, so the engine stops mid-update.
    harness.bus.subscribe((e) => {
      if (e.type === 'replica.started' && e.version === '2.0.0' && readFileSync(gate, 'utf8') === '') writeTree(harness.dir, { gate: `${e.pid}\n` });
    });
    writeTree(harness.ops, { 'releases/2.0.0/server.js': gatedServer(gate) });
    const deploy = async (version: string) => {
      writeTree(harness.ops, { 'environments/dev.yaml': webEnvironment(version) });
      return commitAll(harness.ops, `web ${version}`);
    };
    await deploy('2.0.0');
    void harness.engine.refresh();
    const web = async () => (await harness.engine.status('dev')).environments[0].apps.find((a) => a.name === 'web')!;
    const instances = async () => (await web()).instances as { pid: number; version: string; ready: boolean }[];
    // One old replica replaced by a ready 2.0.0, the next 2.0.0 started but not ready.
    await waitFor('one replica replaced', async () => {
      const i = await instances();
      const v1 = i.filter((x) => x.version === '1.0.0');
      const v2 = i.filter((x) => x.version === '2.0.0');
      return v1.length === 2 && v2.length === 2 && v2.filter((x) => x.ready).length === 1;
    }, 60_000);
    return { port, events, gate, deploy, web, instances };
  }

  const restart = (whileStopped: () => unknown, events: Stamped[]) => h!.restart({ whileStopped: async () => void (await whileStopped()), beforeStart: (x) => x.bus.subscribe((e) => events.push(e)) });

  it('the same version still desired: the next engine finishes it, every replica on 2.0.0', async () => {
    const c = await interruptedRolling();
    await restart(() => writeTree(h!.dir, { gate: 'all' }), c.events);
    const a = await waitFor('2.0.0 everywhere', async () => {
      const w = await c.web();
      return w.sync === 'Synced' && w.health === 'Healthy' && w.replicas.total === 3 && storedRollouts(h!.store).length === 0 && w;
    }, 90_000);
    expect(a.version).toBe('2.0.0');
    expect((await c.instances()).map((i) => i.version)).toEqual(['2.0.0', '2.0.0', '2.0.0']);
    expect(c.events.some((e) => e.type === 'rollout.aborted')).toBe(false);
    for (let i = 0; i < 20; i++) expect(await freshBody(c.port)).toBe('version 2.0.0');
  });

  it('a revert committed while the engine was stopped: every replica back on 1.0.0, the proxy routes to it alone', async () => {
    const c = await interruptedRolling();
    await restart(() => c.deploy('1.0.0'), c.events);
    const a = await waitFor('1.0.0 everywhere', async () => {
      const w = await c.web();
      return w.sync === 'Synced' && w.health === 'Healthy' && w.replicas.total === 3 && (w.instances as { version: string }[]).every((i) => i.version === '1.0.0') && storedRollouts(h!.store).length === 0 && w;
    }, 90_000);
    expect(a.version).toBe('1.0.0');
    const aborted = c.events.find((e) => e.type === 'rollout.aborted');
    expect((aborted as { reason?: string } | undefined)?.reason).toMatch(/^rolling update to 2\.0\.0 cancelled: superseded by revision \w{7}; every replica back on 1\.0\.0$/);
    const table = h!.target.supervisor.routeTable();
    const web = JSON.stringify(table.routes);
    expect(web).not.toContain('2.0.0');
    for (let i = 0; i < 20; i++) expect(await freshBody(c.port)).toBe('version 1.0.0');
  });
});
