import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appServer, commitAll, freePort, gitInit, runCli, tempDir, crashTestEngine, waitFor, webApp, writeTree } from '../helpers.js';

/**
 * A rolling update that finished on the local target, with the engine killed (SIGKILL) before it recorded the sync
 * (`KEELSON_TEST_KILL_AT=synced`): the replicas of the new version keep running, the engine's own record still names
 * the old one. The crash driver found this window (seed 12): with a revert committed while the engine was down, the
 * next engine took the new replicas for the old version, started old-version replicas from the new release beside
 * them and reported Synced, with two versions serving forever. The next engine must converge to one version.
 */
describe('an engine killed after a rolling update finished, before it recorded the sync', { timeout: 240_000 }, () => {
  const tmp = tempDir('keelson-rollout-record-');
  const ops = join(tmp.dir, 'ops');
  const state = join(tmp.dir, 'state');
  const token = 'kls_operator_token_for_rollout_record_0123';
  let api: string;
  let port: number;

  const environment = (version: string) => `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata: { name: dev }
spec:
  apps:
    web: { version: "${version}" }
`;
  const engine = crashTestEngine({ ops, state, api: () => api, token, logDir: tmp.dir, env: { KEELSON_ALLOW_ROOT_APPS: 'true' } });
  const up = (killAt?: 'synced') => engine.up(killAt);
  const stop = () => engine.stop();
  const web = async () => {
    const res = await fetch(`${api}/api/v1/status`, { headers: { authorization: `Bearer ${token}` } }).catch(() => undefined);
    if (!res?.ok) return undefined;
    return (await res.json()).environments?.[0]?.apps.find((a: { name: string }) => a.name === 'web');
  };
  const body = async () => (await (await fetch(`http://127.0.0.1:${port}/`, { headers: { connection: 'close' } })).text()).trim();
  /** web Synced and Healthy at `version`, every instance on it, `replicas` of them. */
  const convergedAt = (version: string) =>
    waitFor(`web converged at ${version}`, async () => {
      const w = await web();
      const versions = (w?.instances ?? []).map((i: { version: string }) => i.version);
      return w?.sync === 'Synced' && w.health === 'Healthy' && w.version === version && versions.length === 2 && versions.every((v: string) => v === version) && w;
    }, 90_000);

  beforeAll(async () => {
    api = `http://127.0.0.1:${await freePort()}`;
    port = await freePort();
    writeTree(ops, {
      'apps/web.yaml': webApp(port, { replicas: 2, rollout: '    progressDeadlineSeconds: 60' }),
      'environments/dev.yaml': environment('1.0.0'),
      'releases/1.0.0/server.js': appServer('1.0.0'),
      'releases/2.0.0/server.js': appServer('2.0.0'),
      'releases/3.0.0/server.js': appServer('3.0.0'),
    });
    gitInit(ops);
    commitAll(ops, 'web 1.0.0');
  });
  afterAll(async () => {
    engine.kill();
    runCli(['down', '--state-dir', state]);
    tmp.cleanup();
  });

  it('a revert committed while it was down: every replica back on the old version, one version serving', async () => {
    void up();
    await convergedAt('1.0.0');
    await stop();

    writeTree(ops, { 'environments/dev.yaml': environment('2.0.0') });
    commitAll(ops, 'web 2.0.0');
    expect(await up('synced')).toBe('SIGKILL');
    expect(await body()).toBe('version 2.0.0');

    writeTree(ops, { 'environments/dev.yaml': environment('1.0.0') });
    commitAll(ops, 'revert to 1.0.0');
    void up();
    await convergedAt('1.0.0');
    for (let i = 0; i < 10; i++) expect(await body()).toBe('version 1.0.0');
    await stop();
  });

  it('the same version still desired: the next engine records it, nothing restarts', async () => {
    writeTree(ops, { 'environments/dev.yaml': environment('3.0.0') });
    commitAll(ops, 'web 3.0.0');
    expect(await up('synced')).toBe('SIGKILL');
    expect(await body()).toBe('version 3.0.0');

    void up();
    const w = await convergedAt('3.0.0');
    const pids = w.instances.map((i: { pid?: number }) => i.pid);
    for (let i = 0; i < 10; i++) expect(await body()).toBe('version 3.0.0');
    expect((await web())?.instances.map((i: { pid?: number }) => i.pid)).toEqual(pids);
    await stop();
  });
});
