/**
 * What HTTPS through Keelson's proxy costs: requests/s and p99 with keep-alive connections (direct to the app, through
 * the proxy on HTTP, through the proxy on HTTPS), and the latency of a new connection with one request (TCP vs TCP +
 * TLS handshake). Real processes: the app and `keelson proxy` are child processes; the load generator is this one.
 * Caddy (Debian's package) as a reverse proxy on the same machine when `caddy` is on the PATH.
 */
import { execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import { bin, dist, fmt, freePort, main, onCleanup, stopProcess, tempDir, tinyServer, waitFor } from './lib.mjs';

const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 16);
const handshakes = Number(process.env.BENCH_HANDSHAKES ?? 300);

function percentile(sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : NaN;
}

function get(mod, opts) {
  return new Promise((resolve, reject) => {
    const req = mod.request(opts, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

/** `concurrency` loops for `seconds` over keep-alive connections: requests/s, p50/p99 in ms, errors. */
async function throughput(mod, base) {
  const agent = new mod.Agent({ keepAlive: true, maxSockets: concurrency });
  const lat = [];
  let errors = 0;
  const until = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        const t = performance.now();
        try {
          await get(mod, { ...base, agent });
          lat.push(performance.now() - t);
        } catch {
          errors++;
        }
      }
    }),
  );
  agent.destroy();
  lat.sort((a, b) => a - b);
  return { rps: lat.length / seconds, p50: percentile(lat, 50), p99: percentile(lat, 99), n: lat.length, errors };
}

/** `handshakes` sequential requests, each on a new connection: p50/p99 in ms. */
async function newConnections(mod, base) {
  const lat = [];
  for (let i = 0; i < handshakes; i++) {
    const t = performance.now();
    await get(mod, { ...base, agent: false });
    lat.push(performance.now() - t);
  }
  lat.sort((a, b) => a - b);
  return { p50: percentile(lat, 50), p99: percentile(lat, 99), n: lat.length };
}

main('tls-overhead', async () => {
  const dir = tempDir('keelson-bench-tls-');
  // The app: the benches' tiny server, as its own process.
  const appPort = await freePort();
  writeFileSync(join(dir, 'server.js'), tinyServer('1'));
  const app = spawn(process.execPath, ['server.js'], { cwd: dir, env: { PORT: String(appPort) }, stdio: 'ignore' });
  onCleanup(() => stopProcess(app));
  // A certificate for the name, self-signed by openssl (the client trusts it as its CA).
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '2', '-subj', '/CN=bench.test', '-addext', 'subjectAltName=DNS:bench.test'], { stdio: 'ignore' });
  const ca = execFileSync('cat', [join(dir, 'cert.pem')], { encoding: 'utf8' });
  // The proxy process, its table with the web ports and the certificate.
  const socket = join(dir, 'proxy.sock');
  const proxy = spawn(process.execPath, [bin, 'proxy', '--socket', socket], { stdio: 'ignore' });
  onCleanup(() => stopProcess(proxy));
  const { ProxyClient } = await import(dist('targets/local/proxy/client.js'));
  const client = new ProxyClient(socket);
  await waitFor('proxy', () => client.health().then(() => true, () => false));
  const web = { http: await freePort(), https: await freePort() };
  await client.putRoutes({
    web,
    routes: [{ key: 'bench/app', hosts: ['bench.test'], backends: [{ id: 'a', url: `http://127.0.0.1:${appPort}`, version: '1' }] }],
    certificates: [{ hosts: ['bench.test'], certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') }],
  });
  await waitFor('app', () => get(http, { host: '127.0.0.1', port: appPort, path: '/' }).then(() => true, () => false));

  const direct = { host: '127.0.0.1', port: appPort, path: '/' };
  const viaHttp = { host: '127.0.0.1', port: web.http, path: '/', headers: { host: 'bench.test' } };
  const viaHttps = { host: '127.0.0.1', port: web.https, path: '/', servername: 'bench.test', ca, headers: { host: 'bench.test' } };
  const r = { seconds, concurrency, handshakes, keepAlive: {}, newConnection: {} };
  // Warm-up, then each in turn.
  await throughput(http, direct);
  r.keepAlive.direct = await throughput(http, direct);
  r.keepAlive.proxyHttp = await throughput(http, viaHttp);
  r.keepAlive.proxyHttps = await throughput(https, viaHttps);
  r.newConnection.direct = await newConnections(http, direct);
  r.newConnection.proxyHttp = await newConnections(http, viaHttp);
  r.newConnection.proxyHttps = await newConnections(https, viaHttps);

  const caddyBin = (() => {
    try {
      return execFileSync('sh', ['-c', 'command -v caddy'], { encoding: 'utf8' }).trim() || undefined;
    } catch {
      return undefined;
    }
  })();
  if (caddyBin) {
    const caddyPort = await freePort();
    const adminPort = await freePort();
    writeFileSync(
      join(dir, 'Caddyfile'),
      `{\n  admin 127.0.0.1:${adminPort}\n  auto_https off\n}\nhttps://bench.test:${caddyPort} {\n  bind 127.0.0.1\n  tls ${join(dir, 'cert.pem')} ${join(dir, 'key.pem')}\n  reverse_proxy 127.0.0.1:${appPort}\n}\n`,
    );
    const caddy = spawn(caddyBin, ['run', '--config', join(dir, 'Caddyfile'), '--adapter', 'caddyfile'], { stdio: 'ignore', env: { ...process.env, HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir } });
    onCleanup(() => stopProcess(caddy));
    const viaCaddy = { host: '127.0.0.1', port: caddyPort, path: '/', servername: 'bench.test', ca, headers: { host: 'bench.test' } };
    await waitFor('caddy', () => get(https, viaCaddy).then(() => true, () => false), { timeoutMs: 20_000 });
    r.caddy = { version: execFileSync(caddyBin, ['version'], { encoding: 'utf8' }).trim().split(' ')[0] };
    r.keepAlive.caddyHttps = await throughput(https, viaCaddy);
    r.newConnection.caddyHttps = await newConnections(https, viaCaddy);
  }
  for (const [k, v] of Object.entries(r.keepAlive)) console.log(`keep-alive ${k}: ${fmt(v.rps)} req/s, p50 ${fmt(v.p50, 2)} ms, p99 ${fmt(v.p99, 2)} ms, errors ${v.errors}`);
  for (const [k, v] of Object.entries(r.newConnection)) console.log(`new connection ${k}: p50 ${fmt(v.p50, 2)} ms, p99 ${fmt(v.p99, 2)} ms`);
  return r;
}, section);

function section(r) {
  const ka = r.keepAlive;
  const nc = r.newConnection;
  const row = (name, v) => `| ${name} | ${fmt(v.rps)} | ${fmt(v.p50, 2)} | ${fmt(v.p99, 2)} | ${v.errors} |`;
  const hrow = (name, v) => `| ${name} | ${fmt(v.p50, 2)} | ${fmt(v.p99, 2)} | ${v.n} |`;
  const lines = [
    '## HTTPS through the proxy (`tls-overhead`)',
    '',
    `One tiny app process; \`keelson proxy\` as its own process serving it on HTTP and on HTTPS (ECDSA P-256 certificate,`,
    `TLS 1.3, SNI) on 127.0.0.1; the load generator is the bench process (Node's http/https clients). Keep-alive:`,
    `${r.concurrency} concurrent loops for ${r.seconds} s each. New connection: ${r.handshakes} sequential requests, each on`,
    `its own connection (TCP, plus the TLS handshake for HTTPS). Times in ms.`,
    '',
    '| Keep-alive | Requests/s | p50 | p99 | Errors |',
    '|---|---|---|---|---|',
    row('direct to the app (HTTP)', ka.direct),
    row('through the proxy, HTTP', ka.proxyHttp),
    row('through the proxy, HTTPS', ka.proxyHttps),
    ...(ka.caddyHttps ? [row(`through Caddy ${r.caddy.version}, HTTPS`, ka.caddyHttps)] : []),
    '',
    '| New connection + one request | p50 | p99 | n |',
    '|---|---|---|---|',
    hrow('direct to the app (HTTP)', nc.direct),
    hrow('through the proxy, HTTP', nc.proxyHttp),
    hrow('through the proxy, HTTPS (handshake included)', nc.proxyHttps),
    ...(nc.caddyHttps ? [hrow(`through Caddy ${r.caddy.version}, HTTPS`, nc.caddyHttps)] : []),
  ];
  if (!r.caddy) lines.push('', '_Caddy was not on the PATH in this run (Debian: `apt-get install caddy`); no peer figures._');
  const summary = [
    { measure: 'HTTPS through the proxy, keep-alive', value: `${fmt(ka.proxyHttps.rps)} req/s, p99 ${fmt(ka.proxyHttps.p99, 1)} ms`, goal: '', met: null, peer: ka.caddyHttps ? `Caddy ${fmt(ka.caddyHttps.rps)} req/s` : 'Caddy not measured', ratio: ka.caddyHttps ? `${(ka.proxyHttps.rps / ka.caddyHttps.rps).toFixed(1)}×` : '' },
  ];
  return { markdown: lines.join('\n'), summary };
}
