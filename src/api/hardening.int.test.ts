import { serve } from '@hono/node-server';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEngine, type EngineHarness } from '../../test/engine-harness.js';
import { Metrics } from '../metrics/metrics.js';
import { createApi } from './app.js';
import { Authenticator, hashToken } from './auth.js';

const adminToken = 'kls_' + 'a'.repeat(40);

/** Real HTTP requests (any Host and Origin header) to the API of a real engine. */
function request(port: number, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(method === 'POST' ? '{}' : undefined);
  });
}

describe('API hardening (real HTTP)', () => {
  let h: EngineHarness;
  let server: ReturnType<typeof serve>;
  let port: number;
  const logLines: string[] = [];

  beforeAll(async () => {
    h = await startEngine(undefined, { prefix: 'keelson-api-hardening-' });
    const log = pino({ level: 'info' }, new Writable({ write: (c, _e, cb) => (logLines.push(String(c)), cb()) }));
    const metrics = new Metrics(h.bus, { processes: () => 0, health: () => [] });
    // The port is known once listening: the API reads it from this object.
    const hosts = { listenHost: '127.0.0.1', port: 0, allowedHosts: ['keelson.internal'] };
    const api = createApi({
      engine: h.engine,
      store: h.store,
      metrics,
      log,
      auth: new Authenticator([{ name: 'admin', role: 'admin', sha256: hashToken(adminToken) }]),
      hosts,
      streamBufferBytes: 64 * 1024,
    });
    server = serve({ fetch: api.fetch, hostname: '127.0.0.1', port: 0 });
    await new Promise<void>((r) => (server.listening ? r() : server.once('listening', () => r())));
    port = (server.address() as AddressInfo).port;
    hosts.port = port;
  });

  afterAll(async () => {
    server?.close();
    await h?.stop();
  });

  it('answers only loopback names with its port, and names the operator allowed (DNS rebinding)', async () => {
    const auth = { authorization: `Bearer ${adminToken}` };
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, 'keelson.internal', `keelson.internal:${port}`]) {
      expect((await request(port, '/api/v1/status', { ...auth, host })).status, host).toBe(200);
    }
    for (const host of [`evil.example:${port}`, `localhost:${port + 1}`, 'localhost', `127.0.0.1.evil.example:${port}`]) {
      const res = await request(port, '/api/v1/status', { ...auth, host });
      expect(res.status, host).toBe(403);
      expect(JSON.parse(res.body).message).toContain('--allow-host');
    }
  });

  it('refuses a state-changing request from a foreign Origin, accepts the dashboard’s own', async () => {
    const headers = { authorization: `Bearer ${adminToken}`, host: `localhost:${port}`, 'content-type': 'application/json' };
    const foreign = await request(port, '/api/v1/environments/dev/sync', { ...headers, origin: 'http://evil.example' }, 'POST');
    expect(foreign.status).toBe(403);
    expect(JSON.parse(foreign.body).message).toContain('origin "http://evil.example" is refused');
    expect((await request(port, '/api/v1/environments/dev/sync', { ...headers, origin: 'null' }, 'POST')).status).toBe(403);
    expect((await request(port, '/api/v1/environments/dev/sync', { ...headers, origin: `http://localhost:${port}` }, 'POST')).status).toBe(200);
    expect((await request(port, '/api/v1/environments/dev/sync', headers, 'POST')).status).toBe(200); // the CLI sends no Origin
  });

  it('drops an event-stream client that stops reading instead of buffering without bound', async () => {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((r) => socket.once('connect', () => r()));
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.on('error', () => undefined);
    socket.write(`GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${adminToken}\r\n\r\n`);
    // The response headers arrive once the stream subscribed; then the client reads no more.
    const head = await new Promise<string>((r) => socket.once('data', (d) => r(String(d))));
    expect(head).toMatch(/^HTTP\/1.1 200/);
    socket.pause();
    const big = 'x'.repeat(32 * 1024);
    const dropped = () => logLines.some((l) => l.includes('event stream client too slow; dropped'));
    for (let i = 0; i < 4000 && !dropped(); i++) {
      h.bus.publish({ type: 'source.failed', message: big });
      if (i % 16 === 0) await new Promise((r) => setImmediate(r));
    }
    expect(dropped()).toBe(true);
    socket.resume(); // what is in flight drains, then the server's close arrives
    await closed;
  });

  // Last: it leaves 127.0.0.1 rate limited.
  it('answers 429 with Retry-After after 10 failed authentications from one address, even to a right token', async () => {
    const host = `127.0.0.1:${port}`;
    // Asking without a credential (a page load, `curl /metrics`) is not a failed authentication.
    for (let i = 0; i < 15; i++) expect((await request(port, '/api/v1/status', { host })).status).toBe(401);
    expect((await request(port, '/api/v1/status', { host, authorization: `Bearer ${adminToken}` })).status).toBe(200);
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await request(port, '/api/v1/status', { host, authorization: `Bearer wrong-${i}` })).status);
    expect(statuses).toEqual(Array(10).fill(401));
    const limited = await request(port, '/api/v1/status', { host, authorization: 'Bearer wrong-again' });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect((await request(port, '/api/v1/status', { host, authorization: `Bearer ${adminToken}` })).status).toBe(429);
  });
});
