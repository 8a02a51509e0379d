import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKey, Keyring } from '../../src/secrets/age-keys.js';
import { decryptSops, emitDecrypted, encryptSops, parsePlain } from '../../src/secrets/sops.js';
import { commitAll, freePort, getJson, gitInit, runCli, startKeelson, stopProcess, tempDir, waitFor, writeTree } from '../helpers.js';

const sha = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

/** An app that proves it got its secrets by answering with their hashes (it never prints them). */
const server = `
const http = require('node:http'); const fs = require('node:fs'); const path = require('node:path'); const crypto = require('node:crypto');
const h = (s) => crypto.createHash('sha256').update(s).digest('hex');
http.createServer((req, res) => {
  if (req.url === '/healthz') return res.end('ok');
  const file = path.join(process.env.KEELSON_SECRETS_DIR, 'config/tls.yaml');
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({
    password: h(process.env.DB_PASSWORD || ''),
    tls: h(fs.readFileSync(file)),
    mode: (fs.statSync(file).mode & 0o777).toString(8),
    dirMode: (fs.statSync(process.env.KEELSON_SECRETS_DIR).mode & 0o777).toString(8),
    dir: process.env.KEELSON_SECRETS_DIR,
  }));
}).listen(Number(process.env.PORT), '127.0.0.1', () => console.log('listening'));
process.on('SIGTERM', () => process.exit(0));
`;

/**
 * SOPS + age secrets end to end: an app gets a secret env var and a secret file, a changed secret rolls it, a
 * tampered file changes nothing live, and the plaintext is nowhere but in the app: not in the state dir (database,
 * logs, releases), the API (status, plan, history, events, SSE) or the engine's output.
 */
describe('secrets on the local target (end to end)', () => {
  const tmp = tempDir('keelson-secrets-');
  const ops = join(tmp.dir, 'ops');
  const state = join(tmp.dir, 'state');
  const engineLog = join(tmp.dir, 'keelson.log');
  const plaintexts = [`pw-one-${randomBytes(8).toString('hex')}`, `pw-two-${randomBytes(8).toString('hex')}`, `tls-${randomBytes(8).toString('hex')}`];
  const [pw1, pw2, tls] = plaintexts;
  let api: string;
  let appPort: number;
  let keelson: ChildProcess;
  let keyring: Keyring;
  let recipient: string;
  const sse: string[] = [];
  const sseAbort = new AbortController();
  const apiBodies: string[] = [];

  const appYaml = (port: number) => `apiVersion: keelson.dev/v1alpha1
kind: App
metadata:
  name: web
spec:
  version: "1.0.0"
  artifact:
    path: ../releases/web
  run:
    command: ["node", "server.js"]
  port: ${port}
  readiness:
    http: { path: /healthz }
    periodSeconds: 1
  rollout:
    progressDeadlineSeconds: 10
  terminationGracePeriodSeconds: 2
  secrets:
    env:
      - name: DB_PASSWORD
        file: ../secrets/db.enc.yaml
        key: password
    files:
      - file: ../secrets/tls.enc.yaml
        path: config/tls.yaml
`;
  const served = async () => (await fetch(`http://127.0.0.1:${appPort}/`)).json() as Promise<{ password: string; tls: string; mode: string; dirMode: string; dir: string }>;
  const webStatus = async () => {
    const s = await getJson(`${api}/api/v1/status`);
    apiBodies.push(JSON.stringify(s));
    return { env: s.environments.find((e: any) => e.name === 'dev'), app: s.environments.find((e: any) => e.name === 'dev')?.apps.find((a: any) => a.name === 'web') };
  };

  beforeAll(async () => {
    const key = await generateKey();
    keyring = new Keyring([key.identity], 'test');
    recipient = key.recipient;
    writeFileSync(join(tmp.dir, 'age.txt'), key.file, { mode: 0o600 });
    const apiPort = await freePort();
    appPort = await freePort();
    api = `http://127.0.0.1:${apiPort}`;
    writeTree(ops, {
      'apps/web.yaml': appYaml(appPort),
      'environments/dev.yaml': 'apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: dev\nspec:\n  apps:\n    web: {}\n',
      'releases/web/server.js': server,
      'secrets/db.enc.yaml': await encryptSops(parsePlain(`user: app\npassword: ${pw1}\n`, 'yaml', 'db'), { format: 'yaml', recipients: [recipient] }),
      'secrets/tls.enc.yaml': await encryptSops(parsePlain(`cert: ${tls}\n`, 'yaml', 'tls'), { format: 'yaml', recipients: [recipient] }),
    });
    gitInit(ops);
    commitAll(ops, 'web with secrets');
    process.env.KEELSON_AGE_KEY_FILE = join(tmp.dir, 'age.txt');
    keelson = startKeelson(['--repo', ops, '--state-dir', state, '--listen', `127.0.0.1:${apiPort}`, '--poll', '1s'], engineLog);
    // Every event the API streams, from the start.
    await waitFor('api up', async () => (await fetch(`${api}/healthz`)).ok);
    void fetch(`${api}/api/v1/events`, { signal: sseAbort.signal })
      .then(async (res) => {
        const dec = new TextDecoder();
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) sse.push(dec.decode(chunk));
      })
      .catch(() => undefined);
  });

  afterAll(async () => {
    sseAbort.abort();
    if (keelson) await stopProcess(keelson);
    runCli(['down', '--state-dir', state]);
    delete process.env.KEELSON_AGE_KEY_FILE;
    tmp.cleanup();
  });

  it('gives the app its secret env var and a 0600 secret file in a private 0700 dir outside the release', async () => {
    await waitFor('web healthy', async () => {
      const { app } = await webStatus();
      return app?.health === 'Healthy' && app.sync === 'Synced';
    });
    const got = await served();
    const file = emitDecrypted(await decryptSops(readFileSync(join(ops, 'secrets/tls.enc.yaml'), 'utf8'), { format: 'yaml', keyring, name: 'tls' }));
    expect(got).toMatchObject({ password: sha(pw1), tls: sha(file), mode: '600', dirMode: '700' });
    expect(relative(state, got.dir)).toMatch(/^secrets\/dev\/web\/[0-9a-f]+\/files$/);
  });

  it('rolls the app when a secret value changes (same version, same release)', async () => {
    const path = join(ops, 'secrets/db.enc.yaml');
    const before = await decryptSops(readFileSync(path, 'utf8'), { format: 'yaml', keyring, name: 'db' });
    writeFileSync(path, await encryptSops(parsePlain(`user: app\npassword: ${pw2}\n`, 'yaml', 'db'), { format: 'yaml', recipients: [recipient], previous: before }));
    commitAll(ops, 'rotate the database password');
    await waitFor('new password served', async () => (await served()).password === sha(pw2), 30_000);
    // The new replica serves a moment before the sync that started it is recorded.
    const history = await waitFor('rotation sync recorded', async () => {
      const h = await getJson(`${api}/api/v1/history?env=dev`);
      return h.syncs[0]?.changes?.[0]?.action === 'configured' && h;
    });
    apiBodies.push(JSON.stringify(history));
    expect(history.syncs[0].changes).toEqual([expect.objectContaining({ app: 'web', action: 'configured', from: '1.0.0', to: '1.0.0' })]);
  });

  it('rejects a tampered secret file at file:line:col and changes nothing live', async () => {
    const path = join(ops, 'secrets/db.enc.yaml');
    const text = readFileSync(path, 'utf8');
    const tampered = text.replace(/(password: ENC\[AES256_GCM,data:)(.)/, (_m, p, c) => p + (c === 'A' ? 'B' : 'A'));
    expect(tampered).not.toBe(text);
    writeFileSync(path, tampered);
    commitAll(ops, 'tamper with the password');
    const { env } = await waitFor('render error', async () => {
      const s = await webStatus();
      return s.env?.error && s;
    });
    expect(env.error.message).toContain('apps/web.yaml:21:15');
    expect(env.error.message).toContain('secrets/db.enc.yaml: the value at password cannot be decrypted');
    expect((await served()).password).toBe(sha(pw2));
    const { app } = await webStatus();
    expect(app.sync).toBe('Synced');
  });

  it('never lets plaintext reach the state dir, the API or the engine output', async () => {
    for (const p of [
      '/api/v1/status',
      '/api/v1/environments/dev/plan',
      '/api/v1/history?env=dev',
      '/api/v1/environments/dev/apps/web/events',
      '/api/v1/environments/dev/apps/web/revisions',
    ]) {
      const res = await fetch(api + p);
      apiBodies.push(await res.text());
    }
    await waitFor('events streamed', () => sse.join('').includes('sync.completed'));
    sseAbort.abort();
    await stopProcess(keelson);

    const leaks: string[] = [];
    const check = (what: string, text: string | Buffer) => {
      for (const p of plaintexts) if (text.includes(p)) leaks.push(`${what} contains ${p.slice(0, 6)}…`);
    };
    apiBodies.forEach((b, i) => check(`API response ${i}`, b));
    check('SSE events', sse.join(''));
    const engineOut = readFileSync(engineLog, 'utf8');
    expect(engineOut).toContain('sync completed');
    check('engine output', engineOut);

    // Everything in the state dir: SQLite (and its WAL), logs, releases, the clone, the ciphertext copies. Only the
    // app's own log and the secret files the app reads are exempt.
    const exempt = (rel: string) => rel.startsWith('logs/dev/web/') || /^secrets\/dev\/web\/[0-9a-f]+\/files\//.test(rel);
    let scanned = 0;
    const walk = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const abs = join(dir, e.name);
        const rel = relative(state, abs);
        if (e.isDirectory()) walk(abs);
        else if (e.isFile() && !exempt(rel)) {
          scanned++;
          check(rel, readFileSync(abs));
        }
      }
    };
    walk(state);
    expect(scanned).toBeGreaterThan(5);
    expect(readdirSync(state)).toEqual(expect.arrayContaining(['secrets']));
    expect(statSync(join(state, 'secrets')).mode & 0o777).toBe(0o700);
    expect(leaks).toEqual([]);
  });
});
