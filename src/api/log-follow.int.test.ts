import { serve } from '@hono/node-server';
import net, { type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEngine, type EngineHarness } from '../../test/engine-harness.js';
import { waitFor } from '../../test/helpers.js';
import { Metrics } from '../metrics/metrics.js';
import { createApi } from './app.js';

/** An app that writes 24 MiB of log lines as fast as it can, then idles. */
const chattyRepo = {
  'apps/chatty.yaml': `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: chatty }
spec:
  version: "1"
  artifact: { path: ../bin }
  run:
    command:
      - node
      - -e
      - |
        const line = 'y'.repeat(1023) + '\\n';
        let left = 24 * 1024;
        const more = () => { while (left > 0) { left--; if (!process.stdout.write(line)) return process.stdout.once('drain', more); } };
        setTimeout(() => { more(); setInterval(() => {}, 1000); }, 1000);
---
apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata: { name: dev }
spec:
  apps: { chatty: {} }
`,
  'bin/README': 'inline app\n',
};

describe('log follow (real HTTP)', () => {
  let h: EngineHarness;
  let server: ReturnType<typeof serve>;
  let port: number;
  const logLines: string[] = [];

  beforeAll(async () => {
    h = await startEngine(chattyRepo, { prefix: 'keelson-log-follow-' });
    const log = pino({ level: 'info' }, new Writable({ write: (c, _e, cb) => (logLines.push(String(c)), cb()) }));
    const api = createApi({ engine: h.engine, store: h.store, metrics: new Metrics(h.bus, { processes: () => 0, health: () => [] }), log, streamBufferBytes: 64 * 1024 });
    server = serve({ fetch: api.fetch, hostname: '127.0.0.1', port: 0 });
    await new Promise<void>((r) => (server.listening ? r() : server.once('listening', () => r())));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    server?.close();
    await h?.stop();
  });

  it('drops a client that stops reading a fast log instead of buffering it', async () => {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((r) => socket.once('connect', () => r()));
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.on('error', () => undefined);
    socket.write(`GET /api/v1/environments/dev/apps/chatty/logs?tail=1&follow=1 HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
    const head = await new Promise<string>((r) => socket.once('data', (d) => r(String(d))));
    expect(head).toMatch(/^HTTP\/1.1 200/);
    socket.pause();
    await waitFor('the slow client dropped', () => logLines.some((l) => l.includes('log follow client too slow; dropped')), 30_000);
    socket.resume();
    await closed;
  });
});
