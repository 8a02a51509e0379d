#!/usr/bin/env node
/**
 * Progressive rollouts under a steady request loop, through `keelson up`: a blue/green update, a canary update
 * (25 % → promote), then a canary of a failing version that the analysis aborts. Prints requests, failures of the
 * good updates, and how long after the failed analysis the last request reached the failing version.
 *
 *   npm run build && node bench/progressive-under-load.mjs [--clients 4]
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { finish, fmt, md, onExitSync } from './lib.mjs';

const { values } = parseArgs({ options: { clients: { type: 'string', default: '4' }, out: { type: 'string' }, 'no-write': { type: 'boolean' } } });
const clients = Number(values.clients);
const root = resolve(import.meta.dirname, '..');
const tmp = mkdtempSync(join(tmpdir(), 'keelson-bench-progressive-'));
const ops = join(tmp, 'ops');
const state = join(tmp, 'state');
const token = 'bench-operator-token';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const freePort = () => new Promise((res) => { const s = net.createServer(); s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => res(port)); }); });
const write = (p, s) => { mkdirSync(dirname(join(ops, p)), { recursive: true }); writeFileSync(join(ops, p), s); };
const git = (...a) => execFileSync('git', ['-c', 'user.name=bench', '-c', 'user.email=bench@keelson.dev', '-c', 'commit.gpgsign=false', ...a], { cwd: ops });
const server = (v, failing) => `const http = require('node:http');
const s = http.createServer((req, res) => { if (req.url === '/healthz') return res.end('ok'); res.statusCode = ${failing ? 500 : 200}; res.end('${v}'); });
s.keepAliveTimeout = 5000; s.listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => { s.close(() => process.exit(0)); s.closeIdleConnections(); });`;

const apiPort = await freePort();
const port = await freePort();
const app = (strategy) => `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: web }
spec:
  version: "1"
  artifact: { path: "releases/{version}" }
  run: { command: ["node", "server.js"] }
  replicas: 2
  port: ${port}
  readiness: { http: { path: /healthz }, periodSeconds: 1 }
  rollout:
    strategy: ${strategy}
${strategy === 'blueGreen' ? '    blueGreen: { scaleDownDelaySeconds: 2 }\n' : `    canary:
      steps:
        - setWeight: 25
        - analysis:
            metrics:
              - { name: errors, requests: { maxErrorRate: 0.05, minRequests: 10 }, intervalSeconds: 1, count: 3 }
`}`;
const env = (v) => `apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: dev }\nspec:\n  apps: { web: { version: "${v}" } }\n`;
write('app.yaml', app('blueGreen'));
write('env.yaml', env('1'));
for (const v of ['1', '2', '3']) write(`releases/${v}/server.js`, server(`v${v}`, false));
write('releases/4/server.js', server('v4', true));
git('init', '-q', '-b', 'main');
git('add', '-A');
git('commit', '-q', '-m', 'v1');

const engine = spawn(process.execPath, [join(root, 'bin/keelson'), 'up', '--repo', ops, '--state-dir', state, '--listen', `127.0.0.1:${apiPort}`, '--poll', '500ms'], {
  stdio: 'ignore',
  env: { ...process.env, KEELSON_TOKEN_OPERATOR: token },
});
onExitSync(() => {
  if (engine.exitCode === null && engine.signalCode === null) engine.kill('SIGKILL');
  if (existsSync(state)) execFileSync(process.execPath, [join(root, 'bin/keelson'), 'down', '--state-dir', state], { stdio: 'ignore' });
  rmSync(tmp, { recursive: true, force: true });
});
const api = `http://127.0.0.1:${apiPort}`;
const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
const web = async () => (await (await fetch(`${api}/api/v1/status`, { headers })).json()).environments[0]?.apps.find((a) => a.name === 'web');
const until = async (what, fn, ms = 120_000) => { const end = Date.now() + ms; for (;;) { const v = await fn().catch(() => undefined); if (v) return v; if (Date.now() > end) throw new Error(`timeout: ${what}`); await sleep(50); } };
const deploy = async (v, strategy) => {
  write('app.yaml', app(strategy));
  write('env.yaml', env(v));
  git('add', '-A');
  git('commit', '-q', '-m', `v${v}`);
  await fetch(`${api}/api/v1/webhooks/git`, { method: 'POST', body: '{}' });
};

// Events: the time of the failed analysis.
let failedAnalysisAt;
await until('engine', async () => (await web())?.health === 'Healthy');
const events = (async () => {
  const res = await fetch(`${api}/api/v1/events`, { headers });
  const dec = new TextDecoder();
  let buf = '';
  for await (const chunk of res.body) {
    buf += dec.decode(chunk, { stream: true });
    for (let i; (i = buf.indexOf('\n\n')) >= 0; buf = buf.slice(i + 2)) {
      const data = buf.slice(0, i).split('\n').find((l) => l.startsWith('data:'));
      if (!data) continue;
      const e = JSON.parse(data.slice(5));
      if (e.type === 'rollout.analysis' && e.metric === '*' && e.phase === 'Failed') failedAnalysisAt ??= performance.now();
    }
  }
})().catch(() => undefined);

const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
const seen = [];
let running = true;
const one = () => new Promise((res) => {
  const req = http.get({ host: '127.0.0.1', port, path: '/', agent }, (r) => {
    let b = '';
    r.on('data', (c) => (b += c));
    r.on('end', () => { seen.push({ at: performance.now(), status: r.statusCode, body: b }); res(); });
  });
  req.on('error', (e) => { seen.push({ at: performance.now(), status: 0, body: e.message }); res(); });
});
const loops = Array.from({ length: clients }, async () => { while (running) await one(); });
const phase = [];
const mark = (name) => phase.push({ name, from: seen.length });

await sleep(1000);
mark('blue/green 1 → 2');
await deploy('2', 'blueGreen');
await until('v2', async () => { const w = await web(); return w?.version === '2' && w.sync === 'Synced' && w.replicas.total === 2; });
await sleep(1000);
mark('canary 2 → 3');
await deploy('3', 'canary');
await until('v3', async () => { const w = await web(); return w?.version === '3' && w.sync === 'Synced' && w.replicas.total === 2; });
await sleep(1000);
mark('canary 3 → 4 (failing, aborted)');
await deploy('4', 'canary');
await until('aborted', async () => (await web())?.sync === 'Failed');
await sleep(2000);
mark('end');
running = false;
await Promise.all(loops);
agent.destroy();
engine.kill('SIGTERM');
await new Promise((r) => engine.once('exit', r));
execFileSync(process.execPath, [join(root, 'bin/keelson'), 'down', '--state-dir', state], { stdio: 'ignore' });
rmSync(tmp, { recursive: true, force: true });
void events;

console.log(`progressive rollouts under load: ${clients} keep-alive clients through the proxy`);
const phases = [];
for (let i = 0; i < phase.length - 1; i++) {
  const part = seen.slice(phase[i].from, phase[i + 1].from);
  const bad = part.filter((s) => s.status !== 200);
  const fromFailing = bad.filter((s) => s.body === 'v4').length;
  phases.push({ name: phase[i].name, requests: part.length, failed: bad.length - fromFailing, fromFailing, kinds: [...new Set(bad.filter((s) => s.body !== 'v4').map((s) => `${s.status || ''} ${s.body}`.trim()))].slice(0, 5) });
  console.log(`  ${phase[i].name.padEnd(34)} ${String(part.length).padStart(6)} requests, ${bad.length - fromFailing} failed${fromFailing ? ` (+${fromFailing} 500s answered by the failing canary)` : ''}`);
}
const lastFailing = Math.max(...seen.filter((s) => s.body === 'v4').map((s) => s.at));
if (failedAnalysisAt) console.log(`  last request served by the failing canary: ${(lastFailing - failedAnalysisAt).toFixed(1)} ms after the failed analysis was seen on the event stream (negative: before)`);
const requests = phases.reduce((n, p) => n + p.requests, 0);
const failed = phases.reduce((n, p) => n + p.failed, 0);
const afterAnalysisMs = failedAnalysisAt && Number.isFinite(lastFailing) ? lastFailing - failedAnalysisAt : null;
const result = { clients, phases, requests, failed, canaryRequests: phases.reduce((n, p) => n + p.fromFailing, 0), lastFailingAfterAnalysisMs: afterAnalysisMs, analysisSeen: Boolean(failedAnalysisAt) };
result.goals = { noFailures: failed === 0 && requests >= 5000, abortWithin2s: afterAnalysisMs !== null && afterAnalysisMs < 2000 };
finish('progressive-under-load', result, section);

/** The BENCHMARKS.md section. */
function section(r) {
  const { yes } = md;
  const markdown = [
    '## Progressive rollouts under load (`progressive-under-load`)',
    '',
    `\`keelson up\` (poll 500 ms, webhook after each commit) with one app of 2 replicas behind the proxy; ${r.clients} keep-alive clients`,
    `send requests back to back through the proxy during three updates: blue/green 1 → 2, canary 2 → 3 (25 % weight, an`,
    `error-rate analysis, promote), and canary 3 → 4 where version 4 answers 500 and the analysis aborts the rollout.`,
    `A failed request is an error or a non-200 answer not sent by the failing version 4 (its 500s are the canary's share`,
    `of traffic until the abort). The abort time is from the failed analysis on the event stream (\`GET /api/v1/events\`)`,
    `to the last request version 4 answered. Goals (issue 4): 0 failed requests of ≥ 5,000; an aborted canary returns all`,
    `traffic to stable within 2 s of the failed analysis.`,
    '',
    '| Phase | Requests | Failed | Answered by the failing canary |',
    '|---|---|---|---|',
    ...r.phases.map((p) => `| ${p.name} | ${p.requests} | ${p.failed}${p.kinds.length ? ` (${p.kinds.join('; ')})` : ''} | ${p.fromFailing} |`),
    '',
    `Last request answered by the failing canary: ${r.lastFailingAfterAnalysisMs === null ? 'n/a' : `${fmt(r.lastFailingAfterAnalysisMs, 1)} ms`} after the failed analysis (negative: before it was seen).`,
    '',
    `Goals: 0 failed of ≥ 5,000: ${yes(r.goals.noFailures)}; all traffic back on stable within 2 s: ${yes(r.goals.abortWithin2s)}.`,
  ].join('\n');
  const summary = [
    { measure: 'failed requests over blue/green + canary + aborted canary', value: `${r.failed} of ${r.requests}`, goal: '0 of ≥ 5,000', met: r.goals.noFailures, peer: '', ratio: '' },
    { measure: 'failed analysis → last request to the failing canary', value: r.lastFailingAfterAnalysisMs === null ? 'n/a' : `${fmt(r.lastFailingAfterAnalysisMs)} ms`, goal: '< 2000 ms', met: r.goals.abortWithin2s, peer: '', ratio: '' },
  ];
  return { markdown, summary };
}
