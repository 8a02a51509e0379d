import type { ChildProcess } from 'node:child_process';
import { renameSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appServer, commitAll, freePort, getJson, gitInit, runCli, startKeelson, stopProcess, tempDir, waitFor, writeTree } from '../helpers.js';

describe('keelson validate', () => {
  const tmp = tempDir('keelson-validate-');
  afterAll(() => tmp.cleanup());

  it('prints every problem as file:line:col and exits 1', () => {
    writeTree(tmp.dir, {
      'apps/web.yaml': 'apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata:\n  name: web\nspec:\n  version: "1"\n  artifact: { path: . }\n  run: { command: [node] }\n  port: 8080\n  replicsa: 2\n',
      'envs/a.yaml': 'apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: a }\nspec:\n  apps: { web: {} }\n',
      'envs/b.yaml': 'apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: b }\nspec:\n  apps: { web: {}, api: {} }\n',
    });
    const r = runCli(['validate', '--repo', tmp.dir]);
    expect(r.code).toBe(1);
    const lines = r.stdout.trim().split('\n');
    expect(lines.every((l) => /^[\w/.-]+\.yaml:\d+:\d+: /.test(l))).toBe(true);
    expect(r.stdout).toContain('apps/web.yaml:10:3:');
    expect(r.stdout).toMatch(/envs\/b\.yaml:\d+:\d+: .*"api"/);
    // The same public port claimed by two environments is reported at both places.
    writeTree(tmp.dir, { 'apps/web.yaml': 'apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata:\n  name: web\nspec:\n  version: "1"\n  artifact: { path: . }\n  run: { command: [node] }\n  port: 8080\n' });
    const again = runCli(['validate', '--repo', tmp.dir]);
    expect(again.code).toBe(1);
    expect(again.stdout.trim().split('\n').filter((l) => l.includes('8080')).map((l) => l.split(':')[0]).sort()).toEqual(['envs/a.yaml', 'envs/b.yaml']);
  });

  it('passes the bundled example', () => {
    const r = runCli(['validate', '--repo', 'examples']);
    expect(r).toMatchObject({ code: 0 });
  });
});

describe('a lost git remote', () => {
  const tmp = tempDir('keelson-lost-');
  const ops = join(tmp.dir, 'ops');
  const state = join(tmp.dir, 'state');
  let keelson: ChildProcess;
  let api: string;
  let appPort: number;

  beforeAll(async () => {
    const apiPort = await freePort();
    appPort = await freePort();
    api = `http://127.0.0.1:${apiPort}`;
    writeTree(ops, {
      'app.yaml': `apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata: { name: web }\nspec:\n  version: "1"\n  artifact: { path: rel }\n  run: { command: ["node", "server.js"] }\n  port: ${appPort}\n---\napiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: dev }\nspec:\n  apps: { web: {} }\n`,
      'rel/server.js': appServer('1'),
    });
    gitInit(ops);
    commitAll(ops, 'web');
    keelson = startKeelson(['--repo', ops, '--state-dir', state, '--listen', `127.0.0.1:${apiPort}`, '--poll', '200ms'], join(tmp.dir, 'keelson.log'));
    await waitFor('web healthy', async () => (await getJson(`${api}/api/v1/status`)).environments[0]?.apps[0]?.health === 'Healthy');
  });

  afterAll(async () => {
    await stopProcess(keelson);
    runCli(['down', '--state-dir', state]);
    tmp.cleanup();
  });

  it('keeps running, reports the source error, and recovers when the remote is back', async () => {
    renameSync(ops, `${ops}.gone`);
    const s = await waitFor('source error', async () => {
      const st = await getJson(`${api}/api/v1/status`);
      return st.source.error && st;
    });
    expect(s.source.error).toMatch(/git fetch/);
    expect(s.environments[0].apps[0]).toMatchObject({ health: 'Healthy', sync: 'Synced' });
    expect(await (await fetch(`http://127.0.0.1:${appPort}/`)).text()).toBe('version 1 \n');
    renameSync(`${ops}.gone`, ops);
    await waitFor('source recovered', async () => (await getJson(`${api}/api/v1/status`)).source.error === null);
    expect(keelson.exitCode).toBeNull();
  });
});
