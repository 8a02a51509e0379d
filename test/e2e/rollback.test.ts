import type { ChildProcess } from 'node:child_process';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appServer, bin, commitAll, freePort, getJson, git, gitInit, runCli, startKeelson, stopProcess, tempDir, waitFor, writeTree } from '../helpers.js';

/** `keelson rollback` writes an ordinary commit to the ops repository; the running engine then deploys it. */
describe('keelson rollback (end to end)', () => {
  const tmp = tempDir('keelson-rollback-');
  const ops = join(tmp.dir, 'ops');
  const remote = join(tmp.dir, 'remote.git');
  const state = join(tmp.dir, 'state');
  let api: string;
  let appPort: number;
  let keelson: ChildProcess;
  const revs: Record<string, string> = {};

  const appYaml = () => `apiVersion: keelson.dev/v1alpha1
kind: App
metadata:
  name: web
spec:
  version: "1.0.0" # the base version
  artifact:
    path: ../releases/web-{version}
  run:
    command: ["node", "server.js"]
    env:
      GREETING: hello
  port: ${appPort}
  readiness:
    http: { path: /healthz }
    periodSeconds: 1
  rollout:
    progressDeadlineSeconds: 8
  terminationGracePeriodSeconds: 3
`;
  const envYaml = (version: string, greeting: string) => `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata:
  name: dev
spec:
  apps:
    # web is pinned per environment
    web:
      version: "${version}"
      env:
        GREETING: ${greeting}
---
apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata:
  name: other
spec:
  apps: {}
`;
  const web = async () => (await getJson(`${api}/api/v1/status?env=dev`)).environments[0]?.apps.find((a: any) => a.name === 'web');
  const kick = () => fetch(`${api}/api/v1/webhooks/git`, { method: 'POST', body: '{}' });
  const rollback = (...args: string[]) => {
    const r = spawnSync(process.execPath, [bin, 'rollback', '--env', 'dev', '--app', 'web', '--repo', ops, '--server', api, ...args], {
      encoding: 'utf8',
      env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null' },
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  beforeAll(async () => {
    const apiPort = await freePort();
    appPort = await freePort();
    api = `http://127.0.0.1:${apiPort}`;
    writeTree(ops, {
      'apps/web.yaml': appYaml(),
      'environments/dev.yaml': envYaml('1.0.0', 'one'),
      'releases/web-1.0.0/server.js': appServer('1.0.0'),
      'releases/web-1.1.0/server.js': appServer('1.1.0'),
      'releases/web-1.2.0/server.js': appServer('1.2.0', { notReady: true }),
    });
    gitInit(ops);
    git(ops, 'config', 'user.name', 'Rita Rollback');
    git(ops, 'config', 'user.email', 'rita@example.com');
    revs.one = commitAll(ops, 'web 1.0.0');
    execFileSync('git', ['init', '-q', '--bare', remote]);
    git(ops, 'remote', 'add', 'origin', remote);
    git(ops, 'push', '-q', '-u', 'origin', 'main');
    keelson = startKeelson(['--repo', ops, '--state-dir', state, '--listen', `127.0.0.1:${apiPort}`, '--poll', '1s'], join(tmp.dir, 'keelson.log'));
    // Synced shows as soon as the new template runs; the sync itself ends once it is ready and recorded.
    await waitFor('1.0.0 deployed', async () => (await getJson(`${api}/api/v1/history?env=dev&app=web`)).syncs[0]?.result === 'Succeeded');
  });

  afterAll(async () => {
    if (keelson) await stopProcess(keelson);
    runCli(['down', '--state-dir', state]);
    tmp.cleanup();
  });

  it('by default restores the last healthy revision, as a commit naming who, what and why, and the engine deploys it', async () => {
    writeTree(ops, { 'environments/dev.yaml': envYaml('1.1.0', 'two') });
    revs.two = commitAll(ops, 'web 1.1.0');
    await kick();
    const synced = await waitFor('the sync of 1.1.0', async () => {
      const last = (await getJson(`${api}/api/v1/history?env=dev&limit=1`)).syncs[0];
      return last?.revision === revs.two && last;
    });
    expect(synced.message).toBe('web configured (1.0.0 → 1.1.0)');
    // 1.2.0 never gets ready: the engine keeps 1.1.0 and records the failure.
    writeTree(ops, { 'environments/dev.yaml': envYaml('1.2.0', 'three') });
    revs.three = commitAll(ops, 'web 1.2.0');
    await kick();
    await waitFor('1.2.0 failed', async () => (await web())?.sync === 'Failed', 60_000);

    const revisions = await getJson(`${api}/api/v1/environments/dev/apps/web/revisions`);
    expect(revisions.revisions.map((r: any) => [r.revision, r.result, r.version])).toEqual([
      [revs.three, 'Failed', '1.2.0'],
      [revs.two, 'Healthy', '1.1.0'],
      [revs.one, 'Healthy', '1.0.0'],
    ]);

    const r = rollback('--yes', '--reason', '1.2.0 never became ready');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--- a/environments/dev.yaml\n+++ b/environments/dev.yaml');
    expect(r.stdout).toContain('-      version: "1.2.0"\n+      version: "1.1.0"');
    expect(r.stdout).toContain('-        GREETING: three\n+        GREETING: two');
    expect(r.stdout).toMatch(/committed [0-9a-f]{7}: Roll back web in dev to [0-9a-f]{7} \(1\.2\.0 → 1\.1\.0\)/);
    const message = git(ops, 'log', '-1', '--format=%an <%ae>%n%B');
    expect(message).toContain('Rita Rollback <rita@example.com>');
    expect(message).toContain(`Roll back web in dev to ${revs.two.slice(0, 7)} (1.2.0 → 1.1.0)`);
    expect(message).toContain('Who: Rita Rollback <rita@example.com>');
    expect(message).toContain(`What: restore App "web" and its entry in Environment "dev" as declared at ${revs.two}`);
    expect(message).toContain('Why: 1.2.0 never became ready');
    // Only the app's entry changed: comments and the other environment stay.
    const dev = readFileSync(join(ops, 'environments/dev.yaml'), 'utf8');
    expect(dev).toBe(envYaml('1.1.0', 'two'));
    expect(git(ops, 'status', '--porcelain')).toBe('');

    await kick();
    // Live already runs 1.1.0 (the engine kept it when 1.2.0 failed): now git says so too, and the app is Synced.
    await waitFor('the engine at the rollback commit, web 1.1.0 Synced', async () => {
      const env = (await getJson(`${api}/api/v1/status?env=dev`)).environments[0];
      const a = env?.apps.find((x: any) => x.name === 'web');
      return env?.revision === git(ops, 'rev-parse', 'HEAD') && a?.version === '1.1.0' && a.sync === 'Synced';
    }, 60_000);
  }, 120_000);

  it('--to restores an older revision (App document too) and --push pushes it', async () => {
    writeTree(ops, { 'apps/web.yaml': appYaml().replace('GREETING: hello', 'GREETING: changed\n      EXTRA: "1"') });
    commitAll(ops, 'change the app');
    const r = rollback('--to', revs.one, '--yes', '--push');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('+      GREETING: hello');
    expect(r.stdout).toContain('pushed');
    expect(readFileSync(join(ops, 'apps/web.yaml'), 'utf8')).toBe(appYaml());
    expect(git(remote, 'rev-parse', 'main')).toBe(git(ops, 'rev-parse', 'HEAD'));
    expect(git(ops, 'log', '-1', '--format=%B')).toContain(`Why: requested rollback to ${revs.one.slice(0, 7)}`);
  });

  it('says so when there is nothing to roll back, and refuses to write without --yes off a terminal', () => {
    const same = rollback('--to', 'HEAD');
    expect(same.code).toBe(0);
    expect(same.stdout).toMatch(/nothing to roll back/);
    const asks = rollback('--to', revs.two);
    expect(asks.code).toBe(2);
    expect(asks.stderr).toMatch(/refusing to write without confirmation/);
    expect(git(ops, 'status', '--porcelain')).toBe('');
  });
});
