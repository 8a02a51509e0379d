import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processStartTime } from '../../src/targets/local/process.js';
import {
  appServer,
  commitAll,
  freePort,
  getJson,
  git,
  gitInit,
  requestLoop,
  runCli,
  startKeelson,
  stopProcess,
  tempDir,
  waitFor,
  writeTree,
} from '../helpers.js';

/**
 * The whole loop, for real: a git ops repository → `keelson up` → supervised Node processes behind the proxy.
 * Steps run in order and build on each other, like a day in the life of an ops repository.
 */
describe('keelson up on the local target (end to end)', () => {
  const tmp = tempDir('keelson-e2e-');
  const ops = join(tmp.dir, 'ops');
  const state = join(tmp.dir, 'state');
  let apiPort: number;
  let appPort: number;
  let api: string;
  let keelson: ChildProcess;
  let restarts = 0;
  const commits: Record<string, string> = {};

  const appYaml = (extra = '') => `apiVersion: keelson.dev/v1alpha1
kind: App
metadata:
  name: web
spec:
  version: "1.0.0"
  artifact:
    path: ../releases/web-{version}
  run:
    command: ["node", "server.js"]
    env:
      GREETING: hi
  replicas: 2
  port: ${appPort}
  readiness:
    http: { path: /healthz }
    periodSeconds: 1
  rollout:
    progressDeadlineSeconds: 4
  terminationGracePeriodSeconds: 5
${extra}---
apiVersion: keelson.dev/v1alpha1
kind: App
metadata:
  name: worker
spec:
  version: "1.0.0"
  artifact:
    path: ../releases/worker
  run:
    command: ["node", "-e", "setInterval(() => console.log('tick'), 1000)"]
  dependsOn: [web]
`;
  const envYaml = (webVersion: string, withWorker = true) => `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata:
  name: dev
spec:
  target:
    local: {}
  apps:
    web:
      version: "${webVersion}"
${withWorker ? '    worker: {}\n' : ''}`;

  const status = () => getJson(`${api}/api/v1/status`);
  const appStatus = async (name: string) => (await status()).environments.find((e: any) => e.name === 'dev')?.apps.find((a: any) => a.name === name);
  const webhook = () => fetch(`${api}/api/v1/webhooks/git`, { method: 'POST', body: '{}' }).then((r) => expect(r.status).toBe(202));
  const serving = async () => (await fetch(`http://127.0.0.1:${appPort}/`)).text();
  const pidsOf = (a: any) => a.instances.map((i: any) => i.pid).sort();
  const up = () => {
    keelson = startKeelson(['--repo', ops, '--state-dir', state, '--listen', `127.0.0.1:${apiPort}`, '--poll', '1s'], join(tmp.dir, `keelson-${restarts++}.log`));
  };

  beforeAll(async () => {
    apiPort = await freePort();
    appPort = await freePort();
    api = `http://127.0.0.1:${apiPort}`;
    writeTree(ops, {
      'apps/web.yaml': appYaml(),
      'environments/dev.yaml': envYaml('1.0.0'),
      'releases/web-1.0.0/server.js': appServer('1.0.0'),
      'releases/web-1.1.0/server.js': appServer('1.1.0'),
      'releases/web-2.0.0/server.js': appServer('2.0.0', { crash: 'boom: DATABASE_URL is not set' }),
      'releases/worker/README': 'the worker runs inline code\n',
    });
    gitInit(ops);
    commits.initial = commitAll(ops, 'web 1.0.0 and a worker');
    up();
  });

  afterAll(async () => {
    if (keelson) await stopProcess(keelson);
    runCli(['down', '--state-dir', state]);
    tmp.cleanup();
  });

  it('deploys the first commit: every app Synced and Healthy, served through the proxy', async () => {
    const web = await waitFor('web healthy', async () => {
      const a = await appStatus('web');
      return a?.health === 'Healthy' && a.sync === 'Synced' && a;
    });
    expect(web.version).toBe('1.0.0');
    expect(web.revision).toBe(commits.initial);
    expect(web.replicas).toMatchObject({ desired: 2, ready: 2 });
    await waitFor('worker healthy', async () => (await appStatus('worker'))?.health === 'Healthy');
    expect(await serving()).toBe('version 1.0.0 hi\n');
    const cli = runCli(['status', '--server', api]);
    expect(cli.code).toBe(0);
    expect(cli.stdout).toMatch(/web\s+1\.0\.0\s+Synced\s+Healthy\s+2\/2/);
  });

  it('rolls a new commit out with zero failed requests under a steady request loop', async () => {
    const loop = requestLoop(appPort);
    await waitFor('some traffic', () => loop.total > 20);
    writeFileSync(join(ops, 'environments/dev.yaml'), envYaml('1.1.0'));
    commits.v11 = commitAll(ops, 'web 1.1.0');
    await webhook();
    await waitFor('web 1.1.0 synced', async () => {
      const a = await appStatus('web');
      return a?.version === '1.1.0' && a.sync === 'Synced' && a.health === 'Healthy' && a.replicas.total === 2;
    });
    await waitFor('traffic on 1.1.0', () => (loop.bodies.get('version 1.1.0 hi') ?? 0) > 20);
    await loop.stop();
    expect(loop.failures).toEqual([]);
    expect(loop.bodies.get('version 1.0.0 hi')).toBeGreaterThan(0);
    await waitFor('sync recorded', () => runCli(['history', '--env', 'dev', '--server', api]).stdout.includes('web configured (1.0.0 → 1.1.0)'));
  });

  it('heals a replica killed with kill -9', async () => {
    const before = await appStatus('web');
    const victim = before.instances[0];
    process.kill(victim.pid, 'SIGKILL');
    const after = await waitFor('replacement ready', async () => {
      const a = await appStatus('web');
      const i = a?.instances.find((x: any) => x.id === victim.id);
      return i && i.pid !== victim.pid && i.ready && a.health === 'Healthy' && a;
    });
    expect(after.instances.find((x: any) => x.id === victim.id).restarts).toBe(1);
    const events = await getJson(`${api}/api/v1/environments/dev/apps/web/events`);
    expect(events.events.map((e: any) => e.type)).toContain('drift.detected');
  });

  it('adopts running replicas after an engine restart without restarting them', async () => {
    const before = pidsOf(await appStatus('web'));
    const loop = requestLoop(appPort);
    await stopProcess(keelson);
    // The engine is gone; the apps and the proxy keep serving.
    await waitFor('traffic without the engine', () => loop.total > 20);
    up();
    await waitFor('engine back', async () => (await status()).environments[0]?.revision === commits.v11 && (await appStatus('web'))?.health === 'Healthy');
    await loop.stop();
    expect(loop.failures).toEqual([]);
    expect(pidsOf(await appStatus('web'))).toEqual(before);
  });

  it('reports an invalid commit as file:line and changes nothing live', async () => {
    const before = pidsOf(await appStatus('web'));
    writeTree(ops, { 'apps/broken.yaml': 'apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata:\n  name: broken\nspec:\n  version: [unclosed\n' });
    commits.broken = commitAll(ops, 'a broken file');
    await webhook();
    const env = await waitFor('render error reported', async () => {
      const s = await status();
      return s.revision === commits.broken && s.environments[0].error && s.environments[0];
    });
    expect(env.error.issues.join('\n')).toMatch(/apps\/broken\.yaml:\d+:\d+: /);
    expect(env.revision).toBe(commits.v11);
    const web = env.apps.find((a: any) => a.name === 'web');
    expect(web.version).toBe('1.1.0');
    expect(pidsOf(web)).toEqual(before);
    expect(await serving()).toBe('version 1.1.0 hi\n');
  });

  it('rolls back a version that never gets ready and reports Failed, serving the old version throughout', async () => {
    rmSync(join(ops, 'apps/broken.yaml'));
    commitAll(ops, 'remove the broken file');
    const loop = requestLoop(appPort);
    writeFileSync(join(ops, 'environments/dev.yaml'), envYaml('2.0.0'));
    commits.v2 = commitAll(ops, 'web 2.0.0');
    await webhook();
    const web = await waitFor('sync Failed', async () => {
      const a = await appStatus('web');
      return a?.sync === 'Failed' && a.health === 'Healthy' && a.replicas.total === 2 && a;
    });
    await loop.stop();
    expect(web.version).toBe('1.1.0');
    expect(web.message).toContain('did not become ready');
    expect(web.message).toContain('boom: DATABASE_URL is not set');
    expect(loop.failures).toEqual([]);
    expect(loop.bodies.get('version 2.0.0 hi')).toBeUndefined();
    // The status turns Failed a moment before the sync is recorded.
    const history = await waitFor('failed sync recorded', async () => {
      const h = await getJson(`${api}/api/v1/history?env=dev&app=web`);
      return h.syncs[0]?.revision === commits.v2 && h;
    });
    expect(history.syncs[0]).toMatchObject({ result: 'Failed', revision: commits.v2 });
    // The same failed spec is not retried on every poll.
    const syncsBefore = history.syncs.length;
    await new Promise((r) => setTimeout(r, 2500));
    expect((await getJson(`${api}/api/v1/history?env=dev&app=web`)).syncs.length).toBe(syncsBefore);
  });

  it('brings the previous version back when commits are reverted', async () => {
    git(ops, 'revert', '--no-edit', commits.v2);
    await webhook();
    await waitFor('Synced at 1.1.0', async () => {
      const a = await appStatus('web');
      return a?.sync === 'Synced' && a.version === '1.1.0';
    });
    git(ops, 'revert', '--no-edit', commits.v11);
    const reverted = git(ops, 'rev-parse', 'HEAD');
    await webhook();
    const web = await waitFor('back on 1.0.0', async () => {
      const a = await appStatus('web');
      return a?.sync === 'Synced' && a.version === '1.0.0' && a.health === 'Healthy' && a.replicas.total === 2 && a;
    });
    expect(web.revision).toBe(reverted);
    expect(await serving()).toBe('version 1.0.0 hi\n');
  });

  it('prunes an app removed from the environment', async () => {
    const worker = await appStatus('worker');
    const pid = worker.instances[0].pid;
    writeFileSync(join(ops, 'environments/dev.yaml'), envYaml('1.0.0', false));
    commitAll(ops, 'drop the worker');
    await webhook();
    await waitFor('worker pruned', async () => (await appStatus('worker')) === undefined);
    expect(processStartTime(pid)).toBeUndefined();
    // The sync's history entry is written when the whole sync ends, just after the worker stopped.
    const prune = await waitFor('the prune recorded', async () => {
      const last = (await getJson(`${api}/api/v1/history?env=dev&app=worker`)).syncs[0];
      return last?.changes.some((c: any) => c.app === 'worker' && c.action === 'deleted') && last;
    });
    expect(prune.result).toBe('Succeeded');
    expect(existsSync(join(state, 'keelson.db'))).toBe(true);
    expect(readFileSync(join(ops, 'environments/dev.yaml'), 'utf8')).not.toContain('worker');
  });
});
