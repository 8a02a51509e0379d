#!/usr/bin/env node
/**
 * Keelson restarts and upgrades without dropping traffic. A steady request loop (keep-alive clients on loopback)
 * runs against an app behind the proxy while the engine is restarted RESTARTS times and then upgraded (started
 * from a copy of the build in another directory, with another version). Prints requests, failures, latency and
 * how long each engine took to be back, and checks that no app process and not the proxy was restarted.
 *
 *   npm run build && node bench/restart-under-load.mjs [--restarts 5] [--clients 4] [--pause-ms 1000]
 */
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { finish, fmt, md, onExitSync, stats } from './lib.mjs';

const { values } = parseArgs({ options: { restarts: { type: 'string', default: '5' }, clients: { type: 'string', default: '4' }, 'pause-ms': { type: 'string', default: '1000' }, out: { type: 'string' }, 'no-write': { type: 'boolean' } } });
const restarts = Number(values.restarts);
const clients = Number(values.clients);
const pauseMs = Number(values['pause-ms']);
const root = resolve(import.meta.dirname, '..');
const tmp = mkdtempSync(join(tmpdir(), 'keelson-bench-restart-'));
const ops = join(tmp, 'ops');
const state = join(tmp, 'state');

const freePort = () =>
  new Promise((res) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const write = (p, s) => {
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, s);
};
const git = (...a) => execFileSync('git', ['-c', 'user.name=bench', '-c', 'user.email=bench@keelson.dev', '-c', 'commit.gpgsign=false', ...a], { cwd: ops });

const apiPort = await freePort();
const appPort = await freePort();
write(
  join(ops, 'apps/web.yaml'),
  `apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata: { name: web }\nspec:\n  version: "1.0.0"\n  artifact: { path: ../releases/web }\n  run: { command: ["node", "server.js"] }\n  replicas: 2\n  port: ${appPort}\n  readiness: { http: { path: /healthz }, periodSeconds: 1 }\n`,
);
write(join(ops, 'environments/dev.yaml'), 'apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: dev }\nspec:\n  apps: { web: {} }\n');
write(
  join(ops, 'releases/web/server.js'),
  `const http = require('node:http');
const s = http.createServer((req, res) => res.end(req.url === '/healthz' ? 'ok' : 'version 1.0.0'));
s.keepAliveTimeout = 5000;
s.listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => { s.close(() => process.exit(0)); s.closeIdleConnections(); });
`,
);
git('init', '-q', '-b', 'main');
git('add', '-A');
git('commit', '-q', '-m', 'web');

// The upgrade: the same build copied elsewhere with another version, as a package upgrade installs it.
const next = join(tmp, 'keelson-next');
cpSync(join(root, 'dist'), join(next, 'dist'), { recursive: true });
cpSync(join(root, 'bin'), join(next, 'bin'), { recursive: true });
// Files the build reads at run time from the package (the dashboard's assets).
cpSync(join(root, 'src/ui/assets'), join(next, 'src/ui/assets'), { recursive: true });
writeFileSync(join(next, 'package.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')), version: '9.9.9-next' }));
symlinkSync(join(root, 'node_modules'), join(next, 'node_modules'));

let engine;
onExitSync(() => {
  if (engine && engine.exitCode === null && engine.signalCode === null) engine.kill('SIGKILL');
  if (existsSync(state)) execFileSync(process.execPath, [join(root, 'bin', 'keelson'), 'down', '--state-dir', state], { stdio: 'ignore' });
  rmSync(tmp, { recursive: true, force: true });
});
const up = (bin) => {
  engine = spawn(process.execPath, [bin, 'up', '--repo', ops, '--state-dir', state, '--listen', `127.0.0.1:${apiPort}`, '--poll', '1s'], { stdio: 'ignore' });
};
const stop = () =>
  new Promise((res) => {
    if (engine.exitCode !== null) return res();
    engine.once('exit', res);
    engine.kill('SIGTERM');
  });
const status = async () => {
  const r = await fetch(`http://127.0.0.1:${apiPort}/api/v1/status`);
  return (await r.json()).environments[0]?.apps.find((a) => a.name === 'web');
};
const ready = async (timeoutMs = 60_000) => {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const w = await status().catch(() => undefined);
    if (w?.health === 'Healthy' && w.sync === 'Synced') return w;
    if (Date.now() > until) throw new Error('engine did not come back');
    await sleep(20);
  }
};
const proxyPid = () =>
  new Promise((res) => {
    const req = http.get({ socketPath: join(state, 'proxy.sock'), path: '/healthz' }, (r) => {
      let b = '';
      r.on('data', (c) => (b += c));
      r.on('end', () => res(JSON.parse(b).pid));
    });
    req.on('error', () => res(undefined));
  });

up(join(root, 'bin', 'keelson'));
const first = await ready();
const pids = first.instances.map((i) => i.pid).sort().join(',');
const proxy = await proxyPid();

// The load: `clients` sequential keep-alive loops.
const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
const latencies = [];
const failures = [];
let running = true;
let total = 0;
const one = () =>
  new Promise((res) => {
    total++;
    const t0 = performance.now();
    const req = http.get({ host: '127.0.0.1', port: appPort, path: '/', agent }, (r) => {
      r.resume();
      r.on('end', () => {
        latencies.push(performance.now() - t0);
        if (r.statusCode !== 200) failures.push(`status ${r.statusCode}`);
        res();
      });
    });
    req.on('error', (e) => {
      failures.push(e.message);
      res();
    });
  });
const loops = Array.from({ length: clients }, async () => {
  while (running) await one();
});

const backAfter = [];
const started = performance.now();
await sleep(pauseMs);
for (let i = 0; i <= restarts; i++) {
  const upgrade = i === restarts;
  const t0 = performance.now();
  await stop();
  await sleep(pauseMs); // no engine at all for a while
  up(upgrade ? join(next, 'bin', 'keelson') : join(root, 'bin', 'keelson'));
  await ready();
  backAfter.push(performance.now() - t0 - pauseMs);
  await sleep(pauseMs);
}
running = false;
await Promise.all(loops);
const seconds = (performance.now() - started) / 1000;
const after = await status();
const samePids = after.instances.map((i) => i.pid).sort().join(',') === pids;
const appRestarts = after.instances.reduce((n, i) => n + i.restarts, 0);
const sameProxy = (await proxyPid()) === proxy;
await stop();
execFileSync(process.execPath, [join(root, 'bin', 'keelson'), 'down', '--state-dir', state], { stdio: 'ignore' });
agent.destroy();
rmSync(tmp, { recursive: true, force: true });

latencies.sort((a, b) => a - b);
const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))].toFixed(2);
const med = [...backAfter].sort((a, b) => a - b)[Math.floor(backAfter.length / 2)];
console.log(`engine restarts under load: ${restarts} restarts + 1 upgrade (another build, another path), ${clients} keep-alive clients`);
console.log(`  requests         ${total} in ${seconds.toFixed(1)} s (${Math.round(total / seconds)} req/s)`);
console.log(`  failed requests  ${failures.length}${failures.length ? ` (${[...new Set(failures)].slice(0, 3).join('; ')})` : ''}`);
console.log(`  latency ms       p50 ${q(0.5)}  p99 ${q(0.99)}  max ${latencies[latencies.length - 1].toFixed(2)}`);
console.log(`  engine back (stop → API Healthy/Synced, without the idle pause)  median ${med.toFixed(0)} ms, max ${Math.max(...backAfter).toFixed(0)} ms`);
console.log(`  app processes    ${samePids ? 'unchanged' : 'CHANGED'} (restarts ${appRestarts}); proxy process ${sameProxy ? 'unchanged' : 'CHANGED'}`);
const result = {
  restarts,
  clients,
  pauseMs,
  requests: total,
  seconds,
  failed: failures.length,
  failureKinds: [...new Set(failures)].slice(0, 5),
  latency: { p50: Number(q(0.5)), p99: Number(q(0.99)), max: latencies[latencies.length - 1] },
  engineBack: stats(backAfter),
  samePids,
  appRestarts,
  sameProxy,
};
result.goals = { noFailures: result.failed === 0 && total >= 5000, untouched: samePids && sameProxy && appRestarts === 0 };
finish('restart-under-load', result, section);
if (failures.length || !samePids || !sameProxy || appRestarts) process.exitCode = 1;

/** The BENCHMARKS.md section. */
function section(r) {
  const { yes } = md;
  const markdown = [
    '## Engine restarts and an upgrade under load (`restart-under-load`)',
    '',
    `\`keelson up\` with one app of 2 replicas behind the proxy; ${r.clients} keep-alive clients on loopback send requests back to back`,
    `through the proxy the whole time. The engine is stopped (SIGTERM), left down for ${r.pauseMs} ms, and started again, ${r.restarts} times;`,
    `then once more from a copy of the build in another directory with another version (an upgrade). "Engine back" is from`,
    `the stop until the status API shows the app Healthy and Synced again, the idle pause excluded. The bench checks that`,
    `no replica process and not the proxy process changed. Goal (issue 4): 0 failed requests of ≥ 5,000.`,
    '',
    '| | Value |',
    '|---|---|',
    `| requests | ${r.requests} in ${fmt(r.seconds, 1)} s (${fmt(r.requests / r.seconds)} req/s) |`,
    `| failed requests | ${r.failed}${r.failureKinds.length ? ` (${r.failureKinds.join('; ')})` : ''} |`,
    `| latency p50 / p99 / max | ${fmt(r.latency.p50, 2)} / ${fmt(r.latency.p99, 2)} / ${fmt(r.latency.max, 2)} ms |`,
    `| engine back after a stop: median (min–max, n) | ${fmt(r.engineBack.median)} (${fmt(r.engineBack.min)}–${fmt(r.engineBack.max)}, n=${r.engineBack.n}) ms |`,
    `| replica processes | ${r.samePids ? 'unchanged' : '**changed**'} (${r.appRestarts} restarts) |`,
    `| proxy process | ${r.sameProxy ? 'unchanged' : '**changed**'} |`,
    '',
    `Goals: 0 failed of ≥ 5,000: ${yes(r.goals.noFailures)}; no app or proxy process restarted: ${yes(r.goals.untouched)}.`,
  ].join('\n');
  const summary = [
    { measure: `failed requests over ${r.restarts} engine restarts + 1 upgrade`, value: `${r.failed} of ${r.requests}`, goal: '0 of ≥ 5,000', met: r.goals.noFailures, peer: '', ratio: '' },
    { measure: 'engine stop → back Healthy/Synced (pause excluded)', value: `${fmt(r.engineBack.median)} ms`, goal: '', met: null, peer: '', ratio: '' },
  ];
  return { markdown, summary };
}
