import { afterEach, describe, expect, it } from 'vitest';
import { startEngine, type EngineHarness } from '../../../test/engine-harness.js';
import { appServer, commitAll, freePort, waitFor, webApp, webEnvironment, writeTree } from '../../../test/helpers.js';
import type { Stamped } from '../../core/events.js';
import { freshBody } from './proxy/testing.js';
import { RolloutCheckpoints } from '../../rollout/checkpoints.js';
import type { Store } from '../../store/store.js';

/** The local rollout checkpoints in the store, read afresh (not the engine's cache). */
const storedRollouts = (store: Store) => new RolloutCheckpoints(store, { target: 'local' }).all();

/**
 * A rollout an engine restart interrupted is taken up by the next engine's first apply of the app: resumed when the
 * app still goes to the same version (test/e2e/rollout-resume.test.ts), aborted like a superseded rollout otherwise.
 * Real processes through the real proxy; the engine stops as on SIGTERM (see EngineHarness.restart).
 */
describe('an interrupted rollout that is no longer desired after a restart', () => {
  let h: EngineHarness | undefined;
  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });

  const repo = (port: number) => ({
    'apps/web.yaml': webApp(port, {
      replicas: 2,
      rollout: `    progressDeadlineSeconds: 60
    strategy: canary
    canary:
      steps:
        - setWeight: 50
        - pause: {}`,
    }),
    'environments/dev.yaml': webEnvironment('1.0.0'),
    'releases/1.0.0/server.js': appServer('1.0.0'),
    'releases/2.0.0/server.js': appServer('2.0.0'),
    'releases/3.0.0/server.js': appServer('3.0.0'),
  });

  /** Starts web 1.0.0, rolls 2.0.0 out to its pause at 50 %, and records every event (of every engine). */
  async function pausedCanary() {
    const port = await freePort();
    const events: Stamped[] = [];
    h = await startEngine(repo(port), { prefix: 'keelson-resume-', beforeStart: (x) => x.bus.subscribe((e) => events.push(e)) });
    const harness = h;
    const deploy = async (version: string) => {
      writeTree(harness.ops, { 'environments/dev.yaml': webEnvironment(version) });
      return commitAll(harness.ops, `web ${version}`);
    };
    const interrupted = await deploy('2.0.0');
    await harness.engine.refresh();
    await waitFor('paused at 50%', () => events.find((e) => e.type === 'rollout.paused' && e.revision === interrupted));
    const web = async () => (await harness.engine.status('dev')).environments[0].apps.find((a) => a.name === 'web')!;
    const pids = async (version: string) => ((await web()).instances as { pid: number; version: string }[]).filter((i) => i.version === version).map((i) => i.pid).sort();
    const stable = await pids('1.0.0');
    const canary = await pids('2.0.0');
    expect([stable.length, canary.length]).toEqual([2, 1]);
    expect(storedRollouts(harness.store)).toHaveLength(1);
    return { port, events, deploy, interrupted, web, pids, stable, canary };
  }

  const restart = (whileStopped: () => unknown, events: Stamped[]) => h!.restart({ whileStopped: async () => void (await whileStopped()), beforeStart: (x) => x.bus.subscribe((e) => events.push(e)) });

  it('a newer version committed while the engine was stopped: aborted (traffic back on stable, canary stopped), then the new version rolls out', async () => {
    const c = await pausedCanary();
    let newer = '';
    const seq = c.events.length;
    await restart(async () => (newer = await c.deploy('3.0.0')), c.events);
    const aborted = await waitFor('aborted', () => c.events.slice(seq).find((e) => e.type === 'rollout.aborted'));
    expect(aborted).toMatchObject({ app: 'web', revision: c.interrupted });
    expect((aborted as any).reason).toBe(`rollout of 2.0.0 cancelled: superseded by revision ${newer.slice(0, 7)}; rollout aborted, all traffic back on 1.0.0`);
    expect(c.events.slice(seq).some((e) => e.type === 'app.rolledBack' && e.revision === c.interrupted)).toBe(true);
    // Then a rollout of the new revision from the stable set, which was never restarted.
    await waitFor('3.0.0 paused at 50%', () => c.events.slice(seq).find((e) => e.type === 'rollout.paused' && e.revision === newer));
    const started = c.events.slice(seq).find((e) => e.type === 'rollout.started' && e.revision === newer);
    expect(started).toMatchObject({ from: '1.0.0', to: '3.0.0' });
    expect((started as any).resumed).toBeUndefined();
    expect(await c.pids('1.0.0')).toEqual(c.stable);
    expect(await c.pids('2.0.0')).toEqual([]);
    h!.bus.publish({ type: 'rollout.promoteRequested', env: 'dev', app: 'web', full: false });
    await waitFor('3.0.0 synced', async () => {
      const a = await c.web();
      // Its checkpoint goes as the rollout returns, a moment after the status shows it done.
      return a.sync === 'Synced' && a.version === '3.0.0' && a.health === 'Healthy' && a.replicas.total === 2 && storedRollouts(h!.store).length === 0;
    });
    expect(storedRollouts(h!.store)).toEqual([]);
  });

  it('the stable version committed back while the engine was stopped: aborted, the stable set untouched and alone', async () => {
    const c = await pausedCanary();
    const seq = c.events.length;
    await restart(() => c.deploy('1.0.0'), c.events);
    const aborted = await waitFor('aborted', () => c.events.slice(seq).find((e) => e.type === 'rollout.aborted'));
    expect(aborted).toMatchObject({ app: 'web', revision: c.interrupted });
    const a = await waitFor('1.0.0 synced, alone', async () => {
      const w = await c.web();
      return w.sync === 'Synced' && w.health === 'Healthy' && w.replicas.total === 2 && storedRollouts(h!.store).length === 0 && w;
    });
    expect(a.version).toBe('1.0.0');
    expect(await c.pids('1.0.0')).toEqual(c.stable);
    expect(storedRollouts(h!.store)).toEqual([]);
    // No weights left behind: every new client lands on 1.0.0.
    for (let i = 0; i < 20; i++) expect(await freshBody(c.port)).toBe('version 1.0.0');
  });
});
