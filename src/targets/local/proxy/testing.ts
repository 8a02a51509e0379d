/** Helpers for the proxy's tests: real HTTP servers on 127.0.0.1 and a plain HTTP client. */
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface TestBackend {
  name: string;
  port: number;
  url: string;
  server: http.Server;
  /** Requests received so far. */
  hits: number;
  /** While set, requests wait until `release()`; `waiting` counts them. */
  hold: boolean;
  waiting: number;
  release(): void;
  /** Resolves when `n` requests are waiting. */
  whenWaiting(n: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * A backend answering `<name>` with a JSON echo of what it received on `/echo`, status 500 on `/fail`,
 * and the request body streamed back on POST `/stream`. Upgrade requests are accepted and echoed.
 */
export async function startBackend(name: string): Promise<TestBackend> {
  let gate: { promise: Promise<void>; open: () => void } | undefined;
  const waiters: { n: number; resolve: () => void }[] = [];
  const b: TestBackend = {
    name,
    port: 0,
    url: '',
    server: http.createServer((req, res) => {
      handle(req, res).catch(() => res.destroy());
    }),
    hits: 0,
    hold: false,
    waiting: 0,
    release() {
      b.hold = false;
      gate?.open();
      gate = undefined;
    },
    whenWaiting(n) {
      if (b.waiting >= n) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ n, resolve }));
    },
    async close() {
      b.release();
      b.server.closeAllConnections();
      await new Promise<void>((resolve) => b.server.close(() => resolve()));
    },
  };
  // Throws when the client (the proxy) gives up mid-request; the caller destroys the response.
  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    b.hits++;
    if (b.hold) {
      gate ??= deferred();
      b.waiting++;
      for (const w of waiters.filter((w) => b.waiting >= w.n)) w.resolve();
      await gate.promise;
      b.waiting--;
    }
    if (req.url === '/stream') {
      res.writeHead(200, { 'x-backend': name });
      req.pipe(res);
      return;
    }
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (req.url === '/echo') {
      res.writeHead(200, { 'content-type': 'application/json', 'x-backend': name });
      res.end(JSON.stringify({ name, headers: req.headers, body: Buffer.concat(chunks).toString() }));
      return;
    }
    res.writeHead(req.url === '/fail' ? 500 : 200, { 'x-backend': name });
    res.end(name);
  }
  b.server.on('upgrade', (req, socket) => {
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${req.headers.upgrade}\r\nConnection: Upgrade\r\nX-Backend: ${name}\r\n\r\n`);
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => b.server.listen(0, '127.0.0.1', resolve));
  b.port = (b.server.address() as AddressInfo).port;
  b.url = `http://127.0.0.1:${b.port}`;
  return b;
}

export function deferred(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

/** A port that was free a moment ago. */
export async function freePort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

export async function tempSocketPath(): Promise<{ dir: string; socketPath: string }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'keelson-proxy-'));
  return { dir, socketPath: path.join(dir, 'proxy.sock') };
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export function request(
  port: number,
  opts: { path?: string; method?: string; headers?: http.OutgoingHttpHeaders; body?: string | Buffer; agent?: http.Agent } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: opts.path ?? '/', method: opts.method ?? 'GET', headers: opts.headers, agent: opts.agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Polls `check` until it returns true; fails after `timeoutMs`. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface TestCertificate {
  certFile: string;
  keyFile: string;
  /** The certificate's PEM (self-signed: a client trusts it as its own CA). */
  pem: string;
}

/**
 * A self-signed certificate for `hosts` made by the real `openssl` CLI (argv, no shell), written to `dir/name.{crt,key}`.
 * `days` may be negative-free only: use `expired` for a certificate whose validity ended yesterday.
 */
export async function selfSignedCertificate(dir: string, name: string, hosts: string[], opts: { expired?: boolean } = {}): Promise<TestCertificate> {
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const run = promisify(execFile);
  const certFile = path.join(dir, `${name}.crt`);
  const keyFile = path.join(dir, `${name}.key`);
  const san = hosts.map((h) => `DNS:${h}`).join(',');
  const base = ['-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-subj', `/CN=${hosts[0]}`, '-addext', `subjectAltName=${san}`];
  if (opts.expired) {
    // `openssl req` cannot backdate; sign with `openssl x509` and a validity that ended a day ago.
    const csr = path.join(dir, `${name}.csr`);
    await run('openssl', ['req', ...base, '-out', csr]);
    await run('openssl', ['x509', '-req', '-in', csr, '-signkey', keyFile, '-out', certFile, '-days', '-1', '-copy_extensions', 'copy']);
  } else {
    await run('openssl', ['req', '-x509', ...base, '-out', certFile, '-days', '2']);
  }
  return { certFile, keyFile, pem: await fs.readFile(certFile, 'utf8') };
}

export interface TlsReply extends Reply {
  /** Serial number of the certificate the server presented. */
  serial: string;
  /** Whether the TLS socket had served a request before (keep-alive). */
  reused: boolean;
}

/** An HTTPS request to 127.0.0.1:`port` for `host` (SNI and Host header), trusting `ca`. */
export async function httpsRequest(
  port: number,
  host: string,
  ca: string | string[],
  opts: { path?: string; agent?: import('node:https').Agent; headers?: http.OutgoingHttpHeaders } = {},
): Promise<TlsReply> {
  const https = await import('node:https');
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, servername: host, path: opts.path ?? '/', ca, agent: opts.agent ?? false, headers: { host, ...opts.headers } },
      (res) => {
        const socket = res.socket as import('node:tls').TLSSocket;
        const serial = socket.getPeerCertificate().serialNumber;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString(), serial, reused: req.reusedSocket }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** The trimmed body of `GET /` on a fresh connection (no keep-alive): what a new client is served. */
export function freshBody(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
        let b = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (b += c));
        res.on('end', () => resolve(b.trim()));
      })
      .on('error', reject);
  });
}
