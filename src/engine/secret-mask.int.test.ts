import { serve } from '@hono/node-server';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEngine, tickRepo, type EngineHarness } from '../../test/engine-harness.js';
import { commitAll, waitFor, writeTree } from '../../test/helpers.js';
import { createApi } from '../api/app.js';
import { silentLogger } from '../log.js';
import { Metrics } from '../metrics/metrics.js';
import { Notifier } from '../notify/notifier.js';
import { generateKey } from '../secrets/age-keys.js';
import { encryptSops, parsePlain } from '../secrets/sops.js';

const app = (name: string, command: string[], extra = '') => `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: ${name} }
spec:
  version: "1"
  artifact: { path: ../bin }
  run: { command: ${JSON.stringify(command)} }
  rollout: { progressDeadlineSeconds: 2 }
  secrets:
    env:
      - name: TOKEN
        file: ../secrets/app.enc.yaml
        key: token
${extra}`;

/**
 * Secrets never leak sideways: an app that prints its secret (the logs API), one that prints it and crashes (the
 * log tail in the failure: history, status, events, notifications), and a failing hook that prints it (hook output).
 */
describe('secret values are masked in every output', () => {
  const token = `tok-${randomBytes(12).toString('hex')}`;
  const b64 = Buffer.from(token).toString('base64').replace(/=+$/, '');
  let h: EngineHarness;
  let base: string;
  let server: ReturnType<typeof serve>;
  let receiver: http.Server;
  const notifications: string[] = [];
  const sse: string[] = [];
  const sseAbort = new AbortController();
  const leaks = (text: string) => text.includes(token) || text.includes(b64);

  beforeAll(async () => {
    const key = await generateKey();
    process.env.KEELSON_AGE_KEY = key.identity;
    receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        notifications.push(body);
        res.end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
    h = await startEngine(tickRepo, {
      prefix: 'keelson-secret-mask-',
      beforeStart: (parts) => {
        new Notifier({ bus: parts.bus, log: silentLogger(), environment: (e) => parts.engine.desiredEnvironment(e) }).start();
        const metrics = new Metrics(parts.bus, { processes: () => 0, health: () => [] });
        const api = createApi({ engine: parts.engine, store: parts.store, metrics, log: silentLogger() });
        server = serve({ fetch: api.fetch, hostname: '127.0.0.1', port: 0 });
      },
    });
    await new Promise<void>((r) => (server.listening ? r() : server.once('listening', () => r())));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    // The stream subscribes before its headers are sent: every event from here on is in `sse`.
    const events = await fetch(`${base}/api/v1/events`, { signal: sseAbort.signal });
    void (async () => {
      const dec = new TextDecoder();
      for await (const chunk of events.body as unknown as AsyncIterable<Uint8Array>) sse.push(dec.decode(chunk));
    })().catch(() => undefined);

    const leakFile = join(h.dir, 'leak.txt');
    writeFileSync(leakFile, `the hook saw ${token}\n`);
    writeTree(h.ops, {
      'secrets/app.enc.yaml': await encryptSops(parsePlain(`token: ${token}\n`, 'yaml', 'app'), { format: 'yaml', recipients: [key.recipient] }),
      'apps/leaky.yaml': app('leaky', ['node', '-e', "console.log('my token is ' + process.env.TOKEN); console.log('b64 ' + Buffer.from(process.env.TOKEN).toString('base64')); setInterval(() => {}, 1000)"]),
      'apps/crashy.yaml': app('crashy', ['node', '-e', "console.log('crashy token ' + process.env.TOKEN); process.exit(1)"], '  readiness: { http: { path: /healthz } }\n'),
      'apps/hooked.yaml': app('hooked', ['node', '-e', 'setInterval(() => {}, 1000)'], `  hooks:\n    preSync:\n      - name: leak\n        exec: { command: ["cat", ${JSON.stringify(leakFile)}] }\n      - name: fail\n        exec: { command: ["sh", "-c", "cat ${leakFile}; exit 3"] }\n`),
      'apps/tick.yaml': tickRepo['apps/tick.yaml'].replace(
        'apps: { tick: {} }',
        `apps: { tick: {}, leaky: {}, crashy: {}, hooked: {} }\n  notifications:\n    - name: ops\n      url: http://127.0.0.1:${(receiver.address() as AddressInfo).port}/n\n      triggers: [syncFailed, rolledBack]`,
      ),
    });
    commitAll(h.ops, 'apps with a secret');
    await h.engine.refresh();
    await waitFor('the sync with the secret apps recorded', () => h.store.history({ env: 'dev' }).find((s) => s.changes.some((c) => c.app === 'crashy')), 60_000);
    await waitFor('a syncFailed notification', () => notifications.length > 0, 20_000);
  }, 120_000);

  afterAll(async () => {
    sseAbort.abort();
    server?.close();
    receiver?.close();
    await h?.stop();
    delete process.env.KEELSON_AGE_KEY;
  });

  it('the logs API serves the app output with the secret masked (plain and base64)', async () => {
    const text = await waitFor('leaky logged', async () => {
      const t = await (await fetch(`${base}/api/v1/environments/dev/apps/leaky/logs?tail=50`)).text();
      return t.includes('my token is') && t.includes('b64 ') && t;
    });
    expect(text).toContain('my token is ***');
    expect(text).toContain('b64 ***');
    expect(leaks(text)).toBe(false);
  });

  it('log follow streams the lines masked too', async () => {
    const ac = new AbortController();
    const res = await fetch(`${base}/api/v1/environments/dev/apps/leaky/logs?tail=50&follow=1`, { signal: ac.signal });
    let text = '';
    const dec = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      text += dec.decode(chunk);
      if (text.includes('b64 ')) break;
    }
    ac.abort();
    expect(text).toContain('my token is ***');
    expect(leaks(text)).toBe(false);
  });

  it('history, status and stored failures show the failing log tail and hook output masked', async () => {
    const history = JSON.stringify(await (await fetch(`${base}/api/v1/history?env=dev`)).json());
    expect(history).toContain('crashy token ***');
    expect(history).toContain('the hook saw ***');
    expect(leaks(history)).toBe(false);
    const status = JSON.stringify(await (await fetch(`${base}/api/v1/status`)).json());
    expect(leaks(status)).toBe(false);
    expect(leaks(JSON.stringify(h.store.failures('dev')))).toBe(false);
  });

  it('neither the event stream nor notification bodies carry the secret', async () => {
    const stream = sse.join('');
    expect(stream).toContain('hook.completed');
    expect(stream).toContain('the hook saw ***');
    expect(leaks(stream)).toBe(false);
    expect(notifications.join('\n')).toContain('***');
    expect(leaks(notifications.join('\n'))).toBe(false);
  });
});
