import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commitAll, freePort, getJson, gitInit, runCli, startKeelson, stopProcess, tempDir, waitFor, writeTree } from '../helpers.js';

/** A release whose `/smoke` answers `smokeStatus`. */
const server = (version: string, smokeStatus = 200) => `
const http = require('node:http');
const s = http.createServer((req, res) => {
  if (req.url === '/smoke') { res.statusCode = ${smokeStatus}; return res.end('smoke ${version}'); }
  res.end('version ${version}\\n');
});
s.listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => { s.close(() => process.exit(0)); s.closeIdleConnections(); });
`;

/**
 * Deploy pipeline hooks, sync windows and notifications through a real `keelson up`: a real git repository, real
 * processes behind the proxy, and a real HTTP receiver for the notifications.
 */
describe('hooks, sync windows and notifications (end to end)', () => {
  const tmp = tempDir('keelson-hooks-');
  const ops = join(tmp.dir, 'ops');
  const state = join(tmp.dir, 'state');
  const marks = join(tmp.dir, 'marks.log');
  let api: string;
  let apiPort: number;
  let appPort: number;
  let keelson: ChildProcess;
  const received: any[] = [];
  let receiver: http.Server;
  let receiverUrl: string;

  const appYaml = (hooks: string) => `apiVersion: keelson.dev/v1alpha1
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
      MARKS: ${marks}
  replicas: 1
  port: ${appPort}
  readiness:
    http: { path: /smoke }
    periodSeconds: 1
  rollout:
    progressDeadlineSeconds: 10
  terminationGracePeriodSeconds: 3
  hooks:
${hooks}`;
  const standardHooks = `    preSync:
      - name: record
        exec:
          command: ["node", "-e", "require('fs').appendFileSync(process.env.MARKS, process.env.KEELSON_HOOK + ' ' + process.env.KEELSON_VERSION + ' ' + require('path').basename(process.cwd()) + '\\\\n')"]
    postSync:
      - name: smoke
        http: { url: "http://127.0.0.1:{port}/smoke", expectStatus: 200 }
        retries: 1
        retryDelaySeconds: 0
    syncFailed:
      - exec:
          command: ["node", "-e", "require('fs').appendFileSync(process.env.MARKS, 'syncFailed ' + process.env.KEELSON_VERSION + ' ' + process.env.KEELSON_RESULT + '\\\\n')"]
    preDelete:
      - exec:
          command: ["node", "-e", "require('fs').appendFileSync(process.env.MARKS, 'preDelete ' + process.env.KEELSON_VERSION + ' ' + require('path').basename(process.cwd()) + '\\\\n')"]
`;
  const envYaml = (version: string, extra = '') => `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata:
  name: dev
spec:
  apps:
    web:
      version: "${version}"
  notifications:
    - name: hook
      url: ${receiverUrl}/hook
      triggers: [syncStarted, syncSucceeded, syncFailed, rolledBack]
    - name: chat
      type: slack
      url: ${receiverUrl}/slack
      triggers: [rolledBack]
${extra}`;

  const web = async () => (await getJson(`${api}/api/v1/status?env=dev`)).environments[0]?.apps.find((a: any) => a.name === 'web');
  const envStatus = async () => (await getJson(`${api}/api/v1/status?env=dev`)).environments[0];
  const lastSync = async () => (await getJson(`${api}/api/v1/history?env=dev&limit=1`)).syncs[0];
  const events = async () => (await getJson(`${api}/api/v1/environments/dev/apps/web/events`)).events as any[];
  const kick = () => fetch(`${api}/api/v1/webhooks/git`, { method: 'POST', body: '{}' });

  beforeAll(async () => {
    receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        received.push({ path: req.url, body: JSON.parse(body) });
        res.end('ok');
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as { port: number }).port}`;
    apiPort = await freePort();
    appPort = await freePort();
    api = `http://127.0.0.1:${apiPort}`;
    writeTree(ops, {
      'apps/web.yaml': appYaml(standardHooks),
      'environments/dev.yaml': envYaml('1.0.0'),
      'releases/web-1.0.0/server.js': server('1.0.0'),
      'releases/web-1.1.0/server.js': server('1.1.0'),
      // Ready (readiness probes /smoke? no: 1.2.0 answers 200 until told otherwise) but its smoke test fails.
      'releases/web-1.2.0/server.js': server('1.2.0'),
      'releases/web-1.3.0/server.js': server('1.3.0'),
    });
    gitInit(ops);
    commitAll(ops, 'web 1.0.0');
    keelson = startKeelson(['--repo', ops, '--state-dir', state, '--listen', `127.0.0.1:${apiPort}`, '--poll', '1s'], join(tmp.dir, 'keelson.log'));
  });

  afterAll(async () => {
    if (keelson) await stopProcess(keelson);
    runCli(['down', '--state-dir', state]);
    receiver?.close();
    tmp.cleanup();
  });

  it('runs preSync before and postSync after the first deploy, with KEELSON_* variables, and notifies', async () => {
    await waitFor('web 1.0.0 synced', async () => {
      const a = await web();
      return a?.sync === 'Synced' && a.health === 'Healthy' && a.version === '1.0.0';
    });
    expect(readFileSync(marks, 'utf8')).toBe('preSync 1.0.0 web-1.0.0\n');
    await waitFor('syncSucceeded notification', () => received.find((r) => r.body.event === 'syncSucceeded'));
    const started = received.find((r) => r.body.event === 'syncStarted');
    const ok = received.find((r) => r.body.event === 'syncSucceeded');
    expect(started.path).toBe('/hook');
    expect(ok.body).toMatchObject({ env: 'dev', app: null, versions: { web: '1.0.0' }, result: 'Succeeded' });
    expect(ok.body.link).toContain('/api/v1/status?env=dev');
    const hookEvents = (await events()).filter((e) => e.type === 'hook.completed');
    expect(hookEvents.map((e) => `${e.data.phase} ${e.data.step} ${e.data.ok}`).sort()).toEqual(['postSync smoke true', 'preSync record true']);
  });

  it('a failing preSync stops the sync: nothing changes live, Failed, syncFailed hooks run', async () => {
    const before = (await web()).instances.map((i: any) => i.pid);
    writeTree(ops, {
      'apps/web.yaml': appYaml(standardHooks.replace('"node", "-e", "require', '"node", "-e", "process.exit(3); require')),
      'environments/dev.yaml': envYaml('1.1.0'),
    });
    commitAll(ops, 'web 1.1.0 with a broken preSync');
    await kick();
    const sync = await waitFor('failed sync', async () => {
      const s = await lastSync();
      return s?.result === 'Failed' && s;
    });
    expect(sync.message).toMatch(/preSync hook "record" failed after 1 attempt: exited 3; nothing was changed/);
    const a = await web();
    expect(a.version).toBe('1.0.0');
    expect(a.sync).toBe('Failed');
    expect(a.instances.map((i: any) => i.pid)).toEqual(before);
    expect(readFileSync(marks, 'utf8')).toContain('syncFailed 1.1.0 Failed\n');
  });

  it('a failing postSync rolls back to the previous release and reports Failed; rolledBack is notified', async () => {
    writeTree(ops, {
      'apps/web.yaml': appYaml(standardHooks.replace('/smoke", expectStatus: 200', '/", expectStatus: 204')),
      'environments/dev.yaml': envYaml('1.2.0'),
    });
    commitAll(ops, 'web 1.2.0 whose smoke test fails');
    await kick();
    const sync = await waitFor('failed sync of 1.2.0', async () => {
      const s = await lastSync();
      return s?.result === 'Failed' && s.changes.some((c: any) => c.to === '1.2.0') && s;
    }, 60_000);
    expect(sync.message).toMatch(/postSync hook "smoke" failed after 2 attempts: GET http:\/\/127\.0\.0\.1:\d+\/ answered 200 \(expected 204\); output: version 1\.2\.0; rolled back to 1\.0\.0 \([0-9a-f]{7}\)$/);
    const a = await web();
    expect(a.version).toBe('1.0.0');
    expect(a.sync).toBe('Failed');
    expect(await (await fetch(`http://127.0.0.1:${appPort}/`)).text()).toBe('version 1.0.0\n');
    const rolled = await waitFor('rolledBack notifications', () => received.filter((r) => r.body.event === 'rolledBack' || r.path === '/slack').length >= 2 && received);
    expect(rolled.find((r) => r.path === '/slack').body.text).toMatch(/:rewind: \*rolledBack\* web in dev at `[0-9a-f]{7}` \(Failed\) — web 1\.2\.0\npostSync hook "smoke" failed .*rolled back to 1\.0\.0 \([0-9a-f]{7}\) <http:\/\/127\.0\.0\.1:\d+\/api\/v1\/status\?env=dev\|details>$/);
    expect((await events()).some((e) => e.type === 'app.rolledBack')).toBe(true);
  });

  it('a deny window holds a new commit and status says why; removing the window lets it sync', async () => {
    writeTree(ops, {
      'apps/web.yaml': appYaml(standardHooks),
      'environments/dev.yaml': envYaml('1.3.0', '  syncWindows:\n    - kind: deny\n      schedule: "* * * * *"\n      duration: 1h\n'),
    });
    commitAll(ops, 'web 1.3.0 during a freeze');
    await kick();
    const env = await waitFor('waiting for the window', async () => {
      const e = await envStatus();
      return e?.syncWindow && e;
    });
    expect(env.syncWindow).toMatch(/^sync waits: deny window "\* \* \* \* \*" for 1h UTC is open since \S+$/);
    expect((await web()).version).toBe('1.0.0');
    writeTree(ops, { 'environments/dev.yaml': envYaml('1.3.0') });
    commitAll(ops, 'end the freeze');
    await kick();
    const synced = await waitFor('the sync of 1.3.0', async () => {
      const last = await lastSync();
      return last?.changes.some((c: any) => c.to === '1.3.0') && last;
    }, 60_000);
    expect(synced.message).toMatch(/^web configured \(1\.0\.0 → 1\.3\.0\)/);
    expect((await envStatus()).syncWindow).toBeNull();
    expect(existsSync(marks)).toBe(true);
  });

  it('runs preDelete in the live release before pruning the app', async () => {
    writeTree(ops, { 'environments/dev.yaml': envYaml('1.3.0').replace(/    web:\n      version: "1\.3\.0"\n/, '    {}\n').replace('  apps:\n    {}\n', '  apps: {}\n') });
    commitAll(ops, 'remove web');
    await kick();
    await waitFor('web pruned', async () => !(await envStatus())?.apps.some((a: any) => a.name === 'web'), 60_000);
    expect(readFileSync(marks, 'utf8')).toMatch(/preDelete 1\.3\.0 1\.3\.0-[0-9a-f]{12}\n$/);
  });
});
