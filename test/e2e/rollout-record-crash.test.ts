import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appServer, bin, commitAll, freePort, gitInit, runCli, tempDir, waitFor, webApp, writeTree } from '../helpers.js';

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
  let keelson: ChildProcess | undefined;
  let starts = 0;

  const environment = (version: string) => `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata: { name: dev }
spec:
  apps:
    web: { version: "${version}" }
`;
  const up = (killAt?: 'synced') => {
    const { KEELSON_TEST_KILL_AT: _drop, ...env } = process.env;
    const child = spawn(process.execPath, [bin, 'up', '--repo', ops, '--state-dir', state, '--listen', api.slice('http://'.length), '--poll', '1s'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...env, KEELSON_LOG_LEVEL: 'debug', KEELSON_ALLOW_ROOT_APPS: 'true', KEELSON_TOKEN_OPERATOR: token, ...(killAt ? { KEELSON_TEST_KILL_AT: killAt } : {}) },
    });
    const chunks: Buffer[] = [];
    child.stdout!.on('data', (c) => chunks.push(c));
    child.stderr!.on('data', (c) => chunks.push(c));
    const log = join(process.env.KEELSON_TEST_LOG_DIR ?? tmp.dir, `keelson-${starts++}.log`);
    const exited = new Promise<NodeJS.Signals | number | null>((resolve) =>
      child.on('exit', (code, signal) => {
        writeFileSync(log, Buffer.concat(chunks));
        resolve(signal ?? code);
      }),
    );
    keelson = child;
    return exited;
  };
  const stop = async (exited: Promise<unknown>) => {
    keelson!.kill('SIGTERM');
    await exited;
    keelson = undefined;
  };
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
    keelson?.kill('SIGKILL');
    runCli(['down', '--state-dir', state]);
    tmp.cleanup();
  });

  it('a revert committed while it was down: every replica back on the old version, one version serving', async () => {
    let exited = up();
    await convergedAt('1.0.0');
    await stop(exited);

    writeTree(ops, { 'environments/dev.yaml': environment('2.0.0') });
    commitAll(ops, 'web 2.0.0');
    expect(await up('synced')).toBe('SIGKILL');
    expect(await body()).toBe('version 2.0.0');

    writeTree(ops, { 'environments/dev.yaml': environment('1.0.0') });
    commitAll(ops, 'revert to 1.0.0');
    exited = up();
    await convergedAt('1.0.0');
    for (let i = 0; i < 10; i++) expect(await body()).toBe('version 1.0.0');
    await stop(exited);
  });

  it('the same version still desired: the next engine records it, nothing restarts', async () => {
    writeTree(ops, { 'environments/dev.yaml': environment('3.0.0') });
    commitAll(ops, 'web 3.0.0');
    expect(await up('synced')).toBe('SIGKILL');
    expect(await body()).toBe('version 3.0.0');

    const exited = up();
    const w = await convergedAt('3.0.0');
    const pids = w.instances.map((i: { pid?: number }) => i.pid);
    for (let i = 0; i < 10; i++) expect(await body()).toBe('version 3.0.0');
    expect((await web())?.instances.map((i: { pid?: number }) => i.pid)).toEqual(pids);
    await stop(exited);
  });
});
