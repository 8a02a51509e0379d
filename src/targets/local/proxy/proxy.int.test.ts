import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { describe, expect, onTestFinished, test } from 'vitest';
import { silentLogger } from '../../../log.js';
import { ProxyClient, ProxyUnreachableError } from './client.js';
import type { BackendSpec, RouteTable } from './protocol.js';
import { startProxy, type Proxy, type ProxyOptions } from './server.js';
import { freePort, request, startBackend, tempSocketPath, waitFor, type TestBackend } from './testing.js';

async function setup(opts: Partial<ProxyOptions> = {}): Promise<{ proxy: Proxy; client: ProxyClient; socketPath: string }> {
  const { dir, socketPath } = await tempSocketPath();
  onTestFinished(() => fs.rm(dir, { recursive: true, force: true }));
  const proxy = await startProxy({ socketPath, log: silentLogger(), closeGraceMs: 5_000, ...opts });
  onTestFinished(() => proxy.close({ force: true }));
  return { proxy, client: new ProxyClient(socketPath), socketPath };
}

async function backend(name: string): Promise<TestBackend> {
  const b = await startBackend(name);
  onTestFinished(() => b.close());
  return b;
}

function spec(b: TestBackend, version = '1'): BackendSpec {
  return { id: b.name, url: b.url, version };
}

function table(port: number, backends: BackendSpec[], key = 'prod/web'): RouteTable {
  return { routes: [{ key, port, backends }] };
}

function keepAliveAgent(): http.Agent {
  const agent = new http.Agent({ keepAlive: true });
  onTestFinished(() => agent.destroy());
  return agent;
}

/** Sends requests from `workers` sequential loops until stopped; collects what went wrong. */
function loadLoop(port: number, workers: number) {
  const agent = keepAliveAgent();
  const failures: string[] = [];
  const servedBy = new Map<string, number>();
  let ok = 0;
  let running = true;
  const done = Promise.all(
    Array.from({ length: workers }, async () => {
      while (running) {
        try {
          const r = await request(port, { agent });
          if (r.status === 200) {
            ok++;
            servedBy.set(r.body, (servedBy.get(r.body) ?? 0) + 1);
          } else failures.push(`${r.status} ${r.body}`);
        } catch (err) {
          failures.push(String(err));
        }
      }
    }),
  );
  return {
    failures,
    servedBy,
    ok: () => ok,
    stop: async () => {
      running = false;
      await done;
    },
  };
}

describe('data plane', () => {
  test('routes requests round robin across backends', async () => {
    const { client } = await setup();
    const [a, b] = await Promise.all([backend('a'), backend('b')]);
    const port = await freePort();
    const status = await client.putRoutes(table(port, [spec(a), spec(b)]));
    expect(status.routes).toEqual([{ key: 'prod/web', port, listening: true }]);

    const bodies: string[] = [];
    for (let i = 0; i < 6; i++) bodies.push((await request(port)).body);
    expect(bodies.filter((x) => x === 'a')).toHaveLength(3);
    expect(bodies.filter((x) => x === 'b')).toHaveLength(3);
    expect(bodies[0]).not.toBe(bodies[1]);
  });

  test('sets X-Forwarded headers and strips hop-by-hop headers', async () => {
    const { client } = await setup();
    const a = await backend('a');
    const port = await freePort();
    await client.putRoutes(table(port, [spec(a)]));

    const r = await request(port, {
      path: '/echo',
      headers: { Host: 'shop.example:8080', Connection: 'keep-alive, x-private', 'x-private': 'secret', 'x-forwarded-for': '10.0.0.9', 'x-app': 'kept' },
    });
    const seen = JSON.parse(r.body).headers;
    // An untrusted client's X-Forwarded-For is replaced, not appended to.
    expect(seen['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen['x-real-ip']).toBe('127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('http');
    expect(seen['x-forwarded-host']).toBe('shop.example:8080');
    expect(seen.host).toBe('shop.example:8080');
    expect(seen['x-app']).toBe('kept');
    expect(seen['x-private']).toBeUndefined();
    expect(r.headers['x-backend']).toBe('a');
  });

  test('streams request and response bodies', async () => {
    const { client } = await setup();
    const a = await backend('a');
    const port = await freePort();
    await client.putRoutes(table(port, [spec(a)]));

    const body = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path: '/stream', method: 'POST' }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => {
          chunks.push(c);
          // The first bytes come back before the request body is complete: nothing is buffered.
          if (chunks.length === 1) req.end('-end');
        });
        res.on('end', () => resolve(Buffer.concat(chunks).toString()));
      });
      req.on('error', reject);
      req.write('x'.repeat(200_000));
    });
    expect(body).toBe('x'.repeat(200_000) + '-end');
  });

  test('answers 503 naming the app when a route has no backends', async () => {
    const { client } = await setup();
    const port = await freePort();
    await client.putRoutes(table(port, []));
    const r = await request(port);
    expect(r.status).toBe(503);
    expect(r.body).toContain('prod/web');
  });

  test('answers 502 when every backend refuses connections', async () => {
    const { client } = await setup();
    const [a, b] = await Promise.all([backend('a'), backend('b')]);
    await Promise.all([a.close(), b.close()]);
    const port = await freePort();
    await client.putRoutes(table(port, [spec(a), spec(b)]));
    const r = await request(port);
    expect(r.status).toBe(502);
    expect(r.body).toContain('prod/web');
  });

  test('sends requests to the remaining backend when one is killed', async () => {
    const { client } = await setup();
    const [a, b] = await Promise.all([backend('a'), backend('b')]);
    const port = await freePort();
    await client.putRoutes(table(port, [spec(a), spec(b)]));
    const agent = keepAliveAgent();
    // Warm the proxy's keep-alive connections to both backends.
    for (let i = 0; i < 4; i++) expect((await request(port, { agent })).status).toBe(200);

    await a.close();
    const bodies: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await request(port, { agent });
      expect(r.status).toBe(200);
      bodies.push(r.body);
    }
    expect(new Set(bodies)).toEqual(new Set(['b']));
    const routes = await client.getRoutes();
    expect(routes.routes[0].backends.find((x) => x.id === 'a')?.errors).toBeGreaterThan(0);
  });

  test('swaps backends under load without a failed request', async () => {
    const { client } = await setup();
    const [a, b, c] = await Promise.all([backend('a'), backend('b'), backend('c')]);
    const port = await freePort();
    await client.putRoutes(table(port, [spec(a, '1'), spec(b, '1')]));

    const load = loadLoop(port, 4);
    onTestFinished(() => load.stop());
    await waitFor(() => load.ok() > 50, 10_000, 'requests on a and b');

    // Hold a's requests so some are in flight when it leaves the table.
    a.hold = true;
    await a.whenWaiting(1);
    await client.putRoutes(table(port, [spec(b, '1'), spec(c, '2')]));
    const before = load.ok();
    await waitFor(() => load.ok() > before + 50, 10_000, 'requests on b and c');

    const draining = (await client.getRoutes()).routes[0].backends.find((x) => x.id === 'a');
    expect(draining).toMatchObject({ draining: true });
    expect(draining!.inflight).toBeGreaterThan(0);
    const waitingOnA = a.waiting;

    const drain = client.drain(['a'], 10_000);
    a.release();
    expect(await drain).toEqual({ drained: true, inflight: 0 });
    await a.close();

    await client.putRoutes(table(port, [spec(c, '2')]));
    const afterSwap = load.ok();
    await waitFor(() => load.ok() > afterSwap + 50, 10_000, 'requests on c');
    await load.stop();

    expect(load.failures).toEqual([]);
    expect(waitingOnA).toBeGreaterThan(0);
    expect(load.servedBy.get('c')).toBeGreaterThan(0);
    expect((await client.getRoutes()).routes[0].backends.map((x) => x.id)).toEqual(['c']);
  });

  test('passes WebSocket upgrades through', async () => {
    const { client } = await setup();
    const a = await backend('a');
    const port = await freePort();
    await client.putRoutes(table(port, [spec(a)]));

    const echoed = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, headers: { Connection: 'Upgrade', Upgrade: 'websocket' } });
      req.on('upgrade', (res, socket) => {
        expect(res.statusCode).toBe(101);
        expect(res.headers['x-backend']).toBe('a');
        socket.write('ping');
        socket.once('data', (d: Buffer) => {
          socket.destroy();
          resolve(d.toString());
        });
      });
      req.on('error', reject);
      req.end();
    });
    expect(echoed).toBe('ping');
    await waitFor(async () => (await client.getRoutes()).routes[0].backends[0].inflight === 0, 10_000, 'tunnel closed');
  });

  test('answers 504 when a backend does not answer within the upstream timeout', async () => {
    const { client } = await setup({ upstreamTimeoutMs: 200 });
    const a = await backend('a');
    a.hold = true;
    const port = await freePort();
    await client.putRoutes(table(port, [spec(a)]));
    const r = await request(port);
    expect(r.status).toBe(504);
  });

  test('routes by Host header and reports a route whose port and host are taken', async () => {
    const { client } = await setup();
    const [a, b, c] = await Promise.all([backend('a'), backend('b'), backend('c')]);
    const port = await freePort();
    const status = await client.putRoutes({
      routes: [
        { key: 'prod/web', port, backends: [spec(a)] },
        { key: 'prod/api', port, host: 'API.example', backends: [spec(b)] },
        { key: 'prod/zzz', port, host: 'api.example', backends: [spec(c)] },
      ],
    });
    expect(status.routes.find((r) => r.key === 'prod/zzz')).toMatchObject({ listening: false, error: expect.stringContaining('prod/api') });
    expect((await request(port, { headers: { Host: 'api.example:80' } })).body).toBe('b');
    expect((await request(port, { headers: { Host: 'other.example' } })).body).toBe('a');
  });
});

describe('control channel', () => {
  test('closes the port of a removed route', async () => {
    const { client } = await setup();
    const a = await backend('a');
    const port = await freePort();
    await client.putRoutes(table(port, [spec(a)]));
    expect((await request(port)).status).toBe(200);

    const status = await client.putRoutes({ routes: [] });
    expect(status.routes).toEqual([]);
    await expect(request(port, { agent: new http.Agent({ keepAlive: false }) })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  test('lets in-flight requests finish when their route is removed', async () => {
    const { client } = await setup();
    const a = await backend('a');
    const port = await freePort();
    await client.putRoutes(table(port, [spec(a)]));
    a.hold = true;
    const pending = request(port);
    await a.whenWaiting(1);
    await client.putRoutes({ routes: [] });
    a.release();
    expect(await pending).toMatchObject({ status: 200, body: 'a' });
  });

  test('reports a port in use and binds it on a later update', async () => {
    const { client } = await setup();
    const a = await backend('a');
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;

    const status = await client.putRoutes(table(port, [spec(a)]));
    expect(status.routes[0]).toMatchObject({ listening: false, error: expect.stringContaining('in use') });
    expect(await client.health()).toMatchObject({ pid: process.pid });

    await new Promise<void>((resolve) => blocker.close(() => resolve()));
    const retried = await client.putRoutes(table(port, [spec(a)]));
    expect(retried.routes[0]).toEqual({ key: 'prod/web', port, listening: true });
    expect((await request(port)).body).toBe('a');
  });

  test('drain resolves when the backend has no request in flight', async () => {
    const { client } = await setup();
    const a = await backend('a');
    const port = await freePort();
    await client.putRoutes(table(port, [spec(a)]));
    a.hold = true;
    const pending = [request(port), request(port)];
    await a.whenWaiting(2);

    expect(await client.drain(['a'], 50)).toEqual({ drained: false, inflight: 2 });
    const drain = client.drain(['a'], 10_000);
    a.release();
    expect(await drain).toEqual({ drained: true, inflight: 0 });
    await Promise.all(pending);
    expect(await client.drain(['unknown'], 10)).toEqual({ drained: true, inflight: 0 });
  });

  test('counts requests, 5xx and latency per route and version', async () => {
    const { client } = await setup();
    const [a, b] = await Promise.all([backend('a'), backend('b')]);
    const port = await freePort();
    await client.putRoutes(table(port, [spec(a, '1.0.0'), spec(b, '1.1.0')]));
    for (let i = 0; i < 4; i++) await request(port);
    for (let i = 0; i < 2; i++) await request(port, { path: '/fail' });

    const stats = await client.stats();
    const route = stats.routes.find((r) => r.key === 'prod/web')!;
    expect(route).toMatchObject({ requests: 6, errors5xx: 2 });
    expect(route.versions.map((v) => [v.version, v.requests, v.errors5xx])).toEqual([
      ['1.0.0', 3, 1],
      ['1.1.0', 3, 1],
    ]);
    const inf = route.latency.buckets.at(-1)!;
    expect(inf).toEqual({ le: '+Inf', count: 6 });
    const routes = await client.getRoutes();
    expect(routes.routes[0].backends.map((x) => [x.id, x.requests, x.errors, x.inflight])).toEqual([
      ['a', 3, 1, 0],
      ['b', 3, 1, 0],
    ]);
  });

  test('rejects an invalid table with a message naming the problem', async () => {
    const { client } = await setup();
    await expect(client.putRoutes({ routes: [{ key: 'prod/web', port: 70000, backends: [] }] })).rejects.toThrow(
      /invalid routing table: routes\.0\.port/,
    );
    await expect(
      client.putRoutes({ routes: [{ key: 'prod/web', port: 8080, backends: [{ id: 'x', url: 'ftp://x', version: '1' }] }] }),
    ).rejects.toThrow(/must be an http:\/\/host:port URL/);
  });

  test('replaces a stale socket file and refuses to start beside a live proxy', async () => {
    const { dir, socketPath } = await tempSocketPath();
    onTestFinished(() => fs.rm(dir, { recursive: true, force: true }));
    // A socket file nobody listens on, as a killed proxy leaves behind.
    const child = spawn(process.execPath, [
      '-e',
      "require('net').createServer().listen(process.argv[1], () => console.log('ready'))",
      socketPath,
    ]);
    onTestFinished(() => {
      child.kill('SIGKILL');
    });
    await once(child.stdout, 'data');
    child.kill('SIGKILL');
    await once(child, 'exit');
    expect((await fs.lstat(socketPath)).isSocket()).toBe(true);

    const proxy = await startProxy({ socketPath, log: silentLogger() });
    onTestFinished(() => proxy.close({ force: true }));
    expect((await new ProxyClient(socketPath).health()).pid).toBe(process.pid);
    expect((await fs.stat(socketPath)).mode & 0o777).toBe(0o600);

    await expect(startProxy({ socketPath, log: silentLogger() })).rejects.toThrow(/already running/);
  });

  test('the client says the proxy is not reachable when nothing listens', async () => {
    const { dir, socketPath } = await tempSocketPath();
    onTestFinished(() => fs.rm(dir, { recursive: true, force: true }));
    const err = await new ProxyClient(socketPath).health().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProxyUnreachableError);
    expect(String(err)).toContain(`proxy not reachable at ${socketPath}`);
  });
});

describe('weighted traffic split', () => {
  /** One route whose backends are a stable (g1) and a canary (g2) group, split by `weights`, sticky by cookie. */
  const canaryTable = (port: number, stable: TestBackend, canary: TestBackend, weights: { g1: number; g2: number }) => ({
    routes: [{ key: 'prod/web', port, backends: [{ ...spec(stable, '1'), group: 'g1' }, { ...spec(canary, '2'), group: 'g2' }], split: { weights, stickyCookie: 'keelson-web' } }],
  });

  test('a WebSocket follows the split, and a client with a sticky cookie stays on its version', async () => {
    const { client } = await setup();
    const stable = await backend('stable');
    const canary = await backend('canary');
    const port = await freePort();
    await client.putRoutes(canaryTable(port, stable, canary, { g1: 90, g2: 10 }));
    const upgrade = (cookie?: string) =>
      new Promise<string>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, headers: { Connection: 'Upgrade', Upgrade: 'websocket', ...(cookie ? { cookie } : {}) } });
        req.on('upgrade', (res, socket) => {
          socket.destroy();
          resolve(String(res.headers['x-backend']));
        });
        req.on('error', reject);
        req.end();
      });
    const sticky = [];
    for (let i = 0; i < 10; i++) sticky.push(await upgrade('keelson-web=g2'));
    expect(sticky).toEqual(Array(10).fill('canary'));
    const split = [];
    for (let i = 0; i < 20; i++) split.push(await upgrade());
    expect(split.filter((b) => b === 'canary').length).toBe(2);
  });

  test('splits a fixed number of requests by weight and keeps a client with a cookie on its group', async () => {
    const { client } = await setup();
    const stable = await backend('stable');
    const canary = await backend('canary');
    const port = await freePort();
    await client.putRoutes(canaryTable(port, stable, canary, { g1: 75, g2: 25 }));
    const agent = keepAliveAgent();
    const served = new Map<string, number>();
    const cookies = new Map<string, string>();
    for (let i = 0; i < 200; i++) {
      const r = await request(port, { agent });
      expect(r.status).toBe(200);
      served.set(r.body, (served.get(r.body) ?? 0) + 1);
      const set = String(r.headers['set-cookie'] ?? '');
      expect(set).toMatch(/^keelson-web=g[12]; Path=\/; HttpOnly; SameSite=Lax$/);
      cookies.set(r.body, set.split(';')[0]);
    }
    expect(served.get('canary')).toBe(50);
    expect(served.get('stable')).toBe(150);
    // A client that carries the cookie stays where it was sent, and is not sent the cookie again.
    for (let i = 0; i < 20; i++) {
      const r = await request(port, { agent, headers: { cookie: cookies.get('canary')! } });
      expect(r.body).toBe('canary');
      expect(r.headers['set-cookie']).toBeUndefined();
    }
    // Once the group loses its weight, the cookie no longer binds: the client moves and gets a new cookie.
    await client.putRoutes(canaryTable(port, stable, canary, { g1: 100, g2: 0 }));
    const moved = await request(port, { agent, headers: { cookie: cookies.get('canary')! } });
    expect(moved.body).toBe('stable');
    expect(moved.headers['set-cookie']).toEqual(['keelson-web=g1; Path=/; HttpOnly; SameSite=Lax']);
    const stats = await client.stats();
    const groups = stats.routes[0].groups.map((g) => [g.group, g.requests]);
    expect(groups).toEqual([
      ['g1', 151],
      ['g2', 70],
    ]);
  });
});
