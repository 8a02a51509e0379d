import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appServer, commitAll, freePort, git, gitInit, runCli, startKeelson, stopProcess, tempDir, waitFor, writeTree } from '../helpers.js';

/**
 * On-demand environments for real: `keelson env create` commits an Environment, the running engine deploys it on its
 * own port (or by host name on a shared one), `keelson run` and `keelson where` work against it, it expires (status
 * Expired, apps stopped) and `keelson env gc` removes it by commit.
 */
describe('on-demand environments (end to end)', () => {
  const tmp = tempDir('keelson-e2e-envs-');
  const ops = join(tmp.dir, 'ops');
  const state = join(tmp.dir, 'state');
  let api: string;
  let stagingPort: number;
  let keelson: ChildProcess;
  const token = 'e2e-admin-token-0123456789abcdefghij';

  const status = async () => {
    const res = await fetch(`${api}/api/v1/status`, { headers: { authorization: `Bearer ${token}` } });
    if (!res.ok) throw new Error(`status: ${res.status} ${await res.text()}`);
    return (await res.json()) as any;
  };
  const envStatus = async (name: string) => (await status()).environments.find((e: any) => e.name === name);
  const appOf = async (env: string, app = 'web') => (await envStatus(env))?.apps.find((a: any) => a.name === app);
  const get = (port: number, host?: string) =>
    new Promise<string>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path: '/', headers: host ? { host } : {} }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve(body.trim()));
        })
        .on('error', reject);
    });

  beforeAll(async () => {
    const apiPort = await freePort();
    stagingPort = await freePort();
    api = `http://127.0.0.1:${apiPort}`;
    writeTree(ops, {
      'apps/web.yaml': `apiVersion: keelson.dev/v1alpha1
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
  port: ${stagingPort}
  readiness:
    http: { path: /healthz }
    periodSeconds: 1
  terminationGracePeriodSeconds: 5
`,
      'envs/staging.yaml': `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata:
  name: staging
spec:
  apps:
    web: {}
`,
      'releases/web-1.0.0/server.js': appServer('1.0.0'),
      'releases/web-1.1.0/server.js': appServer('1.1.0'),
    });
    gitInit(ops);
    git(ops, 'config', 'user.name', 'Quinn QA');
    git(ops, 'config', 'user.email', 'quinn@example.com');
    commitAll(ops, 'staging runs web 1.0.0');
    process.env.KEELSON_TOKEN_ADMIN = token;
    process.env.KEELSON_TOKEN = token;
    keelson = startKeelson(['--repo', ops, '--state-dir', state, '--listen', `127.0.0.1:${apiPort}`, '--poll', '500ms'], join(tmp.dir, 'keelson.log'));
    await waitFor('staging healthy', async () => (await appOf('staging'))?.health === 'Healthy', 60_000);
  }, 90_000);

  afterAll(async () => {
    if (keelson) await stopProcess(keelson);
    runCli(['down', '--state-dir', state]);
    tmp.cleanup();
  });

  let prPort: number;

  it('env create commits an environment that the engine deploys on its own port', async () => {
    const base = await freePort();
    const r = runCli(['env', 'create', 'pr-1', '--from', 'staging', '--set', 'web=1.1.0', '--ttl', '1h', '--port-base', String(base), '--repo', ops, '--json']);
    expect(r.code, r.stderr).toBe(0);
    prPort = JSON.parse(r.stdout).ports.web;
    await waitFor('pr-1 healthy', async () => (await appOf('pr-1'))?.health === 'Healthy', 60_000);
    expect(await get(prPort)).toBe('version 1.1.0 hi');
    expect(await get(stagingPort)).toBe('version 1.0.0 hi');
    const env = await envStatus('pr-1');
    expect(env.phase).toBe('Active');
    expect(Date.parse(env.expiresAt)).toBeGreaterThan(Date.now());
    expect(runCli(['env', 'list', '--repo', ops]).stdout).toMatch(/pr-1\s+Quinn QA <quinn@example.com>/);
  });

  it('host routing: the proxy routes web.qa.localhost on the shared port', async () => {
    const r = runCli(['env', 'create', 'qa', '--from', 'staging', '--set', 'web=1.1.0', '--hosts', '--repo', ops]);
    expect(r.code, r.stderr).toBe(0);
    await waitFor('qa healthy', async () => (await appOf('qa'))?.health === 'Healthy', 60_000);
    await waitFor('host route published', async () => (await get(stagingPort, `web.qa.localhost:${stagingPort}`)) === 'version 1.1.0 hi');
    expect(await get(stagingPort)).toBe('version 1.0.0 hi');
  });

  it('keelson run: a one-off in the release with the app environment, its exit code, recorded in history', () => {
    const r = runCli(['run', '--env', 'pr-1', '--app', 'web', '--server', api, '--', 'node', '-e', 'console.log(process.env.GREETING, process.env.KEELSON_VERSION, require("fs").existsSync("server.js")); process.exit(3)']);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('hi 1.1.0 true\n');
    const ok = runCli(['run', '--env', 'pr-1', '--app', 'web', '--server', api, '--', 'node', '-e', 'process.stderr.write("to stderr")']);
    expect(ok.code).toBe(0);
    const history = JSON.parse(runCli(['history', '--env', 'pr-1', '--json', '--server', api]).stdout);
    const runs = history.filter((s: any) => s.changes.some((c: any) => c.action === 'run'));
    expect(runs.map((s: any) => s.result)).toEqual(['Succeeded', 'Failed']);
    expect(runs[1].summary).toContain('exit 3');
    expect(runCli(['run', '--env', 'pr-1', '--app', 'nope', '--server', api, '--', 'true']).stderr).toContain('not running');
  });

  it('keelson where answers what version runs where, since when, from which commit', async () => {
    const r = runCli(['where', 'web', '--json', '--server', api]);
    expect(r.code, r.stderr).toBe(0);
    const w = JSON.parse(r.stdout);
    const by = Object.fromEntries(w.environments.map((p: any) => [p.env, p]));
    expect(by.staging.version).toBe('1.0.0');
    expect(by['pr-1'].version).toBe('1.1.0');
    expect(by['pr-1'].revision).toMatch(/^[0-9a-f]{40}$/);
    expect(Date.parse(by['pr-1'].since)).toBeGreaterThan(0);
    expect(runCli(['where', 'web', '--server', api]).stdout).toMatch(/pr-1\s+1\.1\.0\s+Healthy\s+Synced/);
  });

  it('an expired environment is stopped (status Expired) and env gc removes it by commit', async () => {
    // Shorten pr-1's life by a commit, as a user would.
    const file = join(ops, 'envs/pr-1.yaml');
    const soon = new Date(Date.now() + 1500).toISOString();
    writeFileSync(file, readFileSync(file, 'utf8').replace(/expiresAt: "[^"]+"/, `expiresAt: "${soon}"`));
    commitAll(ops, 'pr-1: expire now');
    const env = await waitFor('pr-1 expired and stopped', async () => {
      const e = await envStatus('pr-1');
      return e?.phase === 'Expired' && e.apps.length === 0 && e;
    }, 60_000);
    expect(env.expiresAt).toBe(soon);
    // The proxy drops the port once its new route table is in (the status can say so a moment before).
    await waitFor('pr-1 port no longer served', () => get(prPort).then(() => false, () => true), 15_000);
    expect(runCli(['env', 'list', '--repo', ops]).stdout).toMatch(/pr-1 .*Expired/);
    const gc = runCli(['env', 'gc', '--repo', ops]);
    expect(gc.code, gc.stderr).toBe(0);
    expect(git(ops, 'log', '-1', '--format=%s')).toBe('Remove expired environment pr-1');
    await waitFor('pr-1 gone from status', async () => !(await envStatus('pr-1')), 30_000);
    expect(await get(stagingPort)).toBe('version 1.0.0 hi');
  });
});
