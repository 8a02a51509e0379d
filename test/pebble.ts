/**
 * Pebble, the ACME test server of Let's Encrypt (a real binary: KEELSON_PEBBLE_BIN, built by scripts/tools.sh), with
 * a tiny DNS responder of the test so that the names it validates resolve to 127.0.0.1.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'vitest';
import { freePort, waitFor } from './helpers.js';

/** Why Pebble cannot run here, or undefined. */
export function pebbleUnavailable(): string | undefined {
  const bin = process.env.KEELSON_PEBBLE_BIN;
  if (!bin) return 'KEELSON_PEBBLE_BIN is not set (eval "$(scripts/tools.sh env)")';
  if (!existsSync(bin)) return `KEELSON_PEBBLE_BIN=${bin} does not exist`;
  if (!pebbleCertsDir()) return "Pebble's test certificates are not in the Go module cache (scripts/tools.sh build pebble)";
  return undefined;
}

/** Like `kubernetesSuite`: skipped where Pebble is missing, except in CI, where that fails. */
export function pebbleSuite(name: string, body: () => void): void {
  const why = pebbleUnavailable();
  const suite = why && !process.env.CI ? describe.skip : describe;
  suite(`${name}${why ? ` (${why})` : ''}`, () => {
    if (why) {
      it('can run here', () => {
        throw new Error(`the Pebble suite must run in CI: ${why}`);
      });
      return;
    }
    body();
  });
}

/** `test/certs` of the Pebble module (its minica root and the `localhost` certificate its API serves). */
export function pebbleCertsDir(): string | undefined {
  let modcache: string;
  try {
    modcache = execFileSync('go', ['env', 'GOMODCACHE'], { encoding: 'utf8' }).trim();
  } catch {
    return undefined;
  }
  const dir = join(modcache, 'github.com/letsencrypt/pebble/v2@v2.10.3/test/certs');
  return existsSync(join(dir, 'pebble.minica.pem')) ? dir : undefined;
}

/** Answers A queries with 127.0.0.1 for every name, and other types with no records; over UDP and TCP (Go's resolver in Pebble uses TCP). */
export async function startLoopbackDns(): Promise<{ port: number; queries: string[]; close(): Promise<void> }> {
  const queries: string[] = [];
  const answer = (msg: Buffer): Buffer | undefined => {
    if (msg.length < 12) return undefined;
    // Question: labels from offset 12, then type and class.
    let i = 12;
    const labels: string[] = [];
    while (i < msg.length && msg[i] !== 0) {
      labels.push(msg.subarray(i + 1, i + 1 + msg[i]).toString('ascii'));
      i += msg[i] + 1;
    }
    const qEnd = i + 5;
    if (qEnd > msg.length) return undefined;
    const qtype = msg.readUInt16BE(i + 1);
    queries.push(`${labels.join('.')}/${qtype}`);
    const isA = qtype === 1;
    const header = Buffer.alloc(12);
    header.writeUInt16BE(msg.readUInt16BE(0), 0); // id
    header.writeUInt16BE(0x8180, 2); // response, recursion desired and available, NOERROR
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(isA ? 1 : 0, 6);
    const question = msg.subarray(12, qEnd);
    const answer = isA ? Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]) : Buffer.alloc(0);
    return Buffer.concat([header, question, answer]);
  };
  // The same port for both; a TCP port taken by someone else means another try.
  for (let attempt = 0; ; attempt++) {
    const udp = dgram.createSocket('udp4');
    udp.on('message', (msg, peer) => {
      const reply = answer(msg);
      if (reply) udp.send(reply, peer.port, peer.address);
    });
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    const port = udp.address().port;
    const tcp = net.createServer((conn) => {
      let buf = Buffer.alloc(0);
      conn.on('error', () => conn.destroy());
      conn.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
          buf = buf.subarray(2 + msg.length);
          const reply = answer(msg);
          if (reply) conn.write(Buffer.concat([Buffer.from([reply.length >> 8, reply.length & 0xff]), reply]));
        }
      });
    });
    const ok = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (!ok) {
      udp.close();
      if (attempt > 20) throw new Error('no port free for both UDP and TCP');
      continue;
    }
    return {
      port,
      queries,
      close: async () => {
        await new Promise<void>((r) => udp.close(() => r()));
        await new Promise<void>((r) => tcp.close(() => r()));
      },
    };
  }
}

export interface Pebble {
  /** ACME directory URL. */
  directory: string;
  /** PEM of the CA that serves Pebble's API (for `caFile`). */
  apiCa: string;
  /** PEM of the root that issued the certificates (from the management endpoint `/roots/0`). */
  root(): Promise<string>;
  /** Lines Pebble logged; each order logs "POST /order-plz". */
  output: string[];
  stop(): Promise<void>;
}

/**
 * Pebble on 127.0.0.1 validating HTTP-01 on `httpPort` (the proxy's web port) through `dnsPort`. `validitySeconds`
 * sets the certificates' lifetime; `alwaysValid` skips validation (renewal paths only).
 */
export async function startPebble(dir: string, o: { httpPort: number; tlsPort: number; dnsPort: number; validitySeconds?: number; alwaysValid?: boolean }): Promise<Pebble> {
  const certs = pebbleCertsDir()!;
  const [api, mgmt] = [await freePort(), await freePort()];
  const config = join(dir, 'pebble-config.json');
  writeFileSync(
    config,
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${api}`,
        managementListenAddress: `127.0.0.1:${mgmt}`,
        certificate: join(certs, 'localhost/cert.pem'),
        privateKey: join(certs, 'localhost/key.pem'),
        httpPort: o.httpPort,
        tlsPort: o.tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
        retryAfter: { authz: 1, order: 1 },
        keyAlgorithm: 'ecdsa',
        profiles: { default: { description: 'test', validityPeriod: o.validitySeconds ?? 3600 } },
      },
    }),
  );
  const output: string[] = [];
  const child: ChildProcess = spawn(process.env.KEELSON_PEBBLE_BIN!, ['-config', config, '-dnsserver', `127.0.0.1:${o.dnsPort}`], {
    env: {
      PATH: process.env.PATH,
      // No random sleeps before validation, no random nonce rejections: bounded, repeatable tests.
      PEBBLE_VA_NOSLEEP: '1',
      PEBBLE_WFE_NONCEREJECT: '0',
      ...(o.alwaysValid ? { PEBBLE_VA_ALWAYS_VALID: '1' } : {}),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (const s of [child.stdout!, child.stderr!]) s.on('data', (d: Buffer) => output.push(...d.toString().split('\n').filter(Boolean)));
  const apiCa = readFileSync(join(certs, 'pebble.minica.pem'), 'utf8');
  const get = (port: number, path: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      https
        .get({ host: '127.0.0.1', port, path, ca: apiCa, headers: { 'user-agent': 'keelson-test' } }, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        })
        .on('error', reject);
    });
  await waitFor('pebble listening', async () => (await get(api, '/dir').catch(() => undefined))?.status === 200, 20_000);
  return {
    directory: `https://127.0.0.1:${api}/dir`,
    apiCa,
    output,
    async root() {
      const r = await get(mgmt, '/roots/0');
      if (r.status !== 200) throw new Error(`pebble /roots/0 answered ${r.status}`);
      return r.body;
    },
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}
