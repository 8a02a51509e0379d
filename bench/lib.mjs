/**
 * Shared helpers of the benchmarks: real git, real `keelson up` processes, real HTTP. Plain Node ESM, no deps.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createServer } from 'node:net';
import os, { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';

export const root = resolve(import.meta.dirname, '..');
export const bin = join(root, 'bin', 'keelson');
export const dist = (p) => new URL(`../dist/${p}`, import.meta.url).href;

/** Wall-clock epoch in ms with sub-ms resolution: comparable with `performance.timeOrigin` of other processes. */
/** `kubectl ARGS` against the test control plane (KUBECONFIG): its stdout. */
export const kubectl = (...args) => execFileSync('kubectl', args, { encoding: 'utf8', maxBuffer: 512 * 1024 * 1024, stdio: ['ignore', 'pipe', 'pipe'] });

/** Exits with how to start it when the test control plane is not in the environment (the Kubernetes benches). */
export function needControlPlane(script) {
  if (process.env.KUBECONFIG && existsSync(process.env.KUBECONFIG)) return;
  console.error(`${script} needs the test control plane: scripts/testenv.sh start && eval "$(scripts/testenv.sh env)"`);
  process.exit(2);
}

export const now = () => performance.timeOrigin + performance.now();
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- cleanup: every state dir, process and temp dir a bench creates is registered here and undone on exit.
const cleanups = [];
export function onCleanup(fn) {
  cleanups.push(fn);
}
export async function runCleanups() {
  while (cleanups.length) {
    const fn = cleanups.pop();
    try {
      await fn();
    } catch (err) {
      console.error(`cleanup failed: ${err?.message ?? err}`);
    }
  }
}

/**
 * Runs one sub-benchmark: prints its figures, writes its JSON result to `--out <file>` and its section of
 * BENCHMARKS.md (`section(result)` → `{ markdown, summary }`, unless `--no-write`), always cleans up.
 */
export async function main(name, fn, section) {
  const interrupt = async (sig) => {
    console.error(`${name}: ${sig}, cleaning up`);
    await runCleanups();
    process.exit(130);
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  let code = 0;
  try {
    const result = await fn();
    finish(name, result, section);
  } catch (err) {
    console.error(`${name} failed: ${err?.stack ?? err}`);
    code = 1;
  } finally {
    await runCleanups();
  }
  process.exit(code);
}

export function tempDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  onCleanup(() => !process.env.KEELSON_KEEP_TMP && rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function writeTree(dir, files) {
  for (const [p, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, p)), { recursive: true });
    writeFileSync(join(dir, p), content);
  }
}

export function git(dir, ...args) {
  return execFileSync('git', ['-c', 'user.name=Bench', '-c', 'user.email=bench@keelson.dev', '-c', 'commit.gpgsign=false', ...args], {
    cwd: dir,
    encoding: 'utf8',
  }).trim();
}

export function gitInit(dir) {
  git(dir, 'init', '-q', '-b', 'main');
  git(dir, 'config', 'gc.auto', '0');
  git(dir, 'config', 'maintenance.auto', 'false');
}

export function commitAll(dir, message) {
  git(dir, 'add', '-A');
  git(dir, 'commit', '-q', '-m', message);
}

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

const handedOut = new Set();
let nextPublic = 20_000 + Math.floor(Math.random() * 8_000);

/**
 * A free port for an app's public port: below the ephemeral range (32768+), so a replica's PORT, which the engine
 * takes from the ephemeral range, can never take it before the proxy binds it; never the same one twice.
 */
export async function publicPort() {
  for (;;) {
    const port = nextPublic++;
    if (port >= 32_000) nextPublic = 20_000;
    if (handedOut.has(port)) continue;
    const free = await new Promise((res) => {
      const s = createServer();
      s.once('error', () => res(false));
      s.listen(port, '127.0.0.1', () => s.close(() => res(true)));
    });
    if (free) {
      handedOut.add(port);
      return port;
    }
  }
}

/** Polls `probe` every `intervalMs` until it returns a truthy value. */
export async function waitFor(what, probe, { timeoutMs = 60_000, intervalMs = 50 } = {}) {
  const until = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    await sleep(intervalMs);
  }
}

/**
 * `keelson up` as a child process, logging to `logFile`. Registers its teardown: SIGTERM the engine, then
 * `keelson down` (stops replicas and the proxy) — in that order, or the engine would restart what down stops.
 */
export function startKeelson({ repo, stateDir, apiPort, poll = '1s', logFile }) {
  const args = [bin, 'up', '--repo', repo, '--state-dir', stateDir, '--listen', `127.0.0.1:${apiPort}`, '--poll', poll];
  // An operator token: without tokens the API is read-only, and a manual sync is an action.
  const token = `kls_bench_${randomBytes(16).toString('hex')}`;
  // BENCH_ENGINE_NODE_ARGS: node options for the engine alone, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`.
  const nodeArgs = (process.env.BENCH_ENGINE_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    // The bench apps name no `user:`; an engine running as root (this machine, CI) must be told they may run as root.
    env: { KEELSON_LOG_LEVEL: 'info', KEELSON_ALLOW_ROOT_APPS: 'true', ...process.env, KEELSON_TOKEN_OPERATOR: token },
  });
  const chunks = [];
  child.stdout.on('data', (c) => chunks.push(c));
  child.stderr.on('data', (c) => chunks.push(c));
  child.on('exit', () => writeFileSync(logFile, Buffer.concat(chunks)));
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await stopProcess(child);
    keelsonDown(stateDir);
  };
  onCleanup(stop);
  const api = `http://127.0.0.1:${apiPort}`;
  const headers = { authorization: `Bearer ${token}` };
  return {
    child,
    pid: child.pid,
    api,
    stateDir,
    stop,
    /** GET an API path as JSON. */
    get: (path) => getJson(`${api}${path}`, { headers }),
    /** GET an API path as text (`/metrics`). */
    text: async (path) => (await fetch(`${api}${path}`, { headers })).text(),
    /** POST JSON to an API path; resolves the JSON answer. */
    post: (path, body = {}) => getJson(`${api}${path}`, { method: 'POST', body: JSON.stringify(body), headers: { ...headers, 'content-type': 'application/json' } }),
  };
}

export function stopProcess(child, timeoutMs = 15_000) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((res) => {
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', () => {
      clearTimeout(t);
      res();
    });
    child.kill('SIGTERM');
  });
}

export function keelsonDown(stateDir) {
  execFileSync(process.execPath, [bin, 'down', '--state-dir', stateDir], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
}

export async function getJson(url, init) {
  const res = await fetch(url, init);
  if (!res.ok) throw new Error(`${url}: ${res.status} ${await res.text()}`);
  return res.json();
}

/** One GET; resolves `{status, body}` or rejects (refused, reset, timeout). `agent: false` is a new connection. */
export function httpGet(port, path = '/', { agent = false, timeoutMs = 2000 } = {}) {
  return new Promise((res, rej) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent }, (r) => {
      let body = '';
      r.setEncoding('utf8');
      r.on('data', (c) => (body += c));
      r.on('end', () => res({ status: r.statusCode, body }));
      r.on('error', rej);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error('timeout')));
    req.on('error', rej);
  });
}

/** Polls `port` every `intervalMs` (new connection each time) until `accept(body)`; returns the arrival time, body and failed polls. */
export async function pollUntil(port, accept, { intervalMs = 10, timeoutMs = 60_000, path = '/' } = {}) {
  const until = Date.now() + timeoutMs;
  let errors = 0;
  for (;;) {
    try {
      const r = await httpGet(port, path);
      const t = now();
      if (r.status === 200 && accept(r.body)) return { t, body: r.body, errors };
      if (r.status !== 200) errors++;
    } catch {
      errors++;
    }
    if (Date.now() > until) throw new Error(`port ${port} did not serve the expected answer within ${timeoutMs} ms`);
    await sleep(intervalMs);
  }
}

/** A steady request loop over keep-alive connections (like real clients): counts every answer and failure. */
export function requestLoop(port, intervalMs = 5) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const failures = [];
  let total = 0;
  let running = true;
  const done = (async () => {
    while (running) {
      try {
        const r = await httpGet(port, '/', { agent });
        if (r.status !== 200) failures.push(`${r.status} ${r.body.trim()}`);
      } catch (err) {
        failures.push(err.code ?? err.message);
      }
      total++;
      await sleep(intervalMs);
    }
  })();
  return {
    failures,
    get total() {
      return total;
    },
    async stop() {
      running = false;
      await done;
      agent.destroy();
    },
  };
}

export function stats(values) {
  const v = [...values].sort((a, b) => a - b);
  const n = v.length;
  const median = n === 0 ? NaN : n % 2 ? v[(n - 1) / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  return { median, min: v[0], max: v[n - 1], n };
}

/** Resident set of a process in KiB (VmRSS of /proc/<pid>/status). */
export function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** CPU time (user + system) of a process in clock ticks (normally 1/100 s). */
export function cpuTicks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(rest[11]) + Number(rest[12]);
}

/**
 * The test app: answers `GET /` with `<version> <pid> <process start> <listening since>` (epoch ms), so a bench can
 * split a latency into the engine's part and the app's own start-to-ready time. The version comes from
 * `APP_VERSION` or the one baked in.
 */
export function tinyServer(version = '') {
  return `const http = require('node:http');
const { performance } = require('node:perf_hooks');
const version = process.env.APP_VERSION || ${JSON.stringify(version)};
let readyAt = 0;
const server = http.createServer((req, res) => {
  if (req.url === '/healthz') return res.end('ok');
  res.setHeader('content-type', 'text/plain');
  res.end(version + ' ' + process.pid + ' ' + performance.timeOrigin.toFixed(1) + ' ' + readyAt.toFixed(1) + '\\n');
});
server.keepAliveTimeout = 2000;
server.listen(Number(process.env.PORT), '127.0.0.1', () => {
  readyAt = performance.timeOrigin + performance.now();
  console.log('ready', version, 'pid', process.pid, 'after', (readyAt - performance.timeOrigin).toFixed(1), 'ms');
});
process.on('SIGTERM', () => { server.close(() => process.exit(0)); server.closeIdleConnections(); });
`;
}

/** Parses a tiny-server answer. */
export function parseAnswer(body) {
  const [version, pid, startedAt, readyAt] = body.trim().split(' ');
  return { version, pid: Number(pid), startedAt: Number(startedAt), readyAt: Number(readyAt) };
}

export const fmt = (ms, digits = 0) => (Number.isFinite(ms) ? ms.toFixed(digits) : 'n/a');
export const fmtStats = (s, unit = 'ms', digits = 0) => `median ${fmt(s.median, digits)} ${unit} (min ${fmt(s.min, digits)}, max ${fmt(s.max, digits)}, n=${s.n})`;

// ---- BENCHMARKS.md: a header, then one block per benchmark between `<!-- NAME:start -->` and `<!-- NAME:end -->`.
// Every bench writes only its own block, so each can run alone; `bench/run.mjs` runs them all and writes the header.

export const benchmarksFile = process.env.KEELSON_BENCHMARKS_FILE ?? join(root, 'BENCHMARKS.md');
const loadAtStart = os.loadavg();
const startedAt = new Date();
let revisionAtStart;
revision(); // at the bench's start, before it measures anything
const startMarker = (name) => `<!-- ${name}:start -->`;
const endMarker = (name) => `<!-- ${name}:end -->`;
const blockRe = /<!-- ([\w-]+):start -->\n?([\s\S]*?)\n?<!-- \1:end -->/g;
const summaryRe = /^<!-- summary (.*) -->$/m;

/** Every block of the file, in file order: `{ name, body, summary }` (summary: the rows the block declared). */
export function readSections(file = benchmarksFile) {
  if (!existsSync(file)) return [];
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(blockRe)].map(([, name, body]) => ({ name, body, summary: parseSummary(body) }));
}

/**
 * The git revision of the tree measured, with a note when src/ has uncommitted changes: taken once, when first asked
 * (bench/run.mjs asks before it starts and hands it to every bench in KEELSON_BENCH_REVISION, as the build is from then).
 */
export function revision() {
  revisionAtStart ??= process.env.KEELSON_BENCH_REVISION || gitRevision();
  return revisionAtStart;
}

function gitRevision() {
  try {
    const rev = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
    return `${rev}${dirty ? ' + uncommitted changes under src/' : ''}`;
  } catch {
    return 'unknown';
  }
}

export const loadavg = (l) => l.map((x) => x.toFixed(1)).join(' / ');
export const utc = (d = new Date()) => `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;

/**
 * Replaces the block `name` of BENCHMARKS.md with `markdown` (appends it when missing; creates the file), leaving
 * every other block as it is. `summary` rows ({ measure, value, goal, met, peer, ratio }; met true/false/null) feed
 * the summary table `bench/run.mjs` builds; they are kept in the block as an HTML comment. A footer line records
 * when, on which revision, under which load and with which command the figures were measured.
 */
export function writeSection(name, markdown, { summary = [], command, file = benchmarksFile } = {}) {
  const cmd = command ?? `node bench/${name}.mjs${argsForFooter()}`;
  const json = JSON.stringify(summary).replace(/--/g, '-\\u002d'); // `--` may not appear inside an HTML comment
  const footer = `_Measured ${utc(startedAt)} on Keelson ${revision()} with \`${cmd}\`; load average (1/5/15 min) ${loadavg(loadAtStart)} at the start, ${loadavg(os.loadavg())} at the end, on ${os.cpus().length} cores._`;
  const block = `${startMarker(name)}\n<!-- summary ${json} -->\n${markdown.trim()}\n\n${footer}\n${endMarker(name)}`;
  let text = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n';
  const a = text.indexOf(startMarker(name));
  const b = text.indexOf(endMarker(name));
  if (a >= 0 && b > a) text = `${text.slice(0, a)}${block}${text.slice(b + endMarker(name).length)}`;
  else text = `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(file, refreshSummary(text));
  console.log(`BENCHMARKS.md: ${name} section written`);
}

/** The rows of the header's summary table, from every section's declared summary (file order). */
export function summaryRows(sections) {
  return sections.flatMap((s) => s.summary.map((r) => `| ${r.measure} | ${r.value} | ${r.goal || '—'} | ${r.met === true ? 'yes' : r.met === false ? '**no**' : '—'} | ${r.peer ?? ''} | ${r.ratio ?? ''} |`));
}

/** The summary table (and each section's "measured" date) in the header, rebuilt after one section changed alone. */
function refreshSummary(text) {
  const tableStart = text.indexOf('| Measure | Keelson | Goal | Met | Peer | Ratio |\n|---|---|---|---|---|---|\n');
  if (tableStart < 0) return text;
  const bodyStart = text.indexOf('\n', text.indexOf('\n', tableStart) + 1) + 1;
  const bodyEnd = text.indexOf('\n\n', bodyStart);
  const sections = [...text.matchAll(blockRe)].filter(([, name]) => name !== 'header').map(([, name, body]) => ({ name, body, summary: parseSummary(body) }));
  let out = `${text.slice(0, bodyStart)}${summaryRows(sections).join('\n')}${text.slice(bodyEnd)}`;
  for (const s of sections) {
    const at = /_Measured (\d{4}-\d\d-\d\d \d\d:\d\d UTC)/.exec(s.body)?.[1];
    if (at) out = out.replace(new RegExp(`(\\(\`${s.name}\`\\) \\| [^|\\n]* \\| )[^|\\n]*( \\|)`), `$1${at}$2`);
  }
  return out;
}

function parseSummary(body) {
  const m = summaryRe.exec(body);
  try {
    return m ? JSON.parse(m[1]) : [];
  } catch {
    return []; // a hand-edited comment: no summary rows
  }
}

function argsForFooter() {
  const args = [];
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out') i++;
    else args.push(argv[i]);
  }
  return args.length ? ` ${args.join(' ')}` : '';
}

/**
 * The command line of this bench for the section footer: the `BENCH_*` knobs set that its script reads, the script and
 * its arguments (not `--out`).
 */
export function benchCommand(name) {
  let source = '';
  try {
    source = readFileSync(join(root, 'bench', `${name}.mjs`), 'utf8');
  } catch {
    /* no such script: no knobs */
  }
  const knobs = Object.entries(process.env)
    .filter(([k]) => k.startsWith('BENCH_') && source.includes(`process.env.${k}`))
    .map(([k, v]) => `${k}=${v} `)
    .join('');
  return `${knobs}node bench/${name}.mjs${argsForFooter()}`;
}

/**
 * The end of a bench: writes its JSON result to `--out FILE` (for bench/run.mjs) and its section of BENCHMARKS.md
 * (unless `--no-write`). `section(result)` returns `{ markdown, summary }`.
 */
export function finish(name, result, section) {
  const outIdx = process.argv.indexOf('--out');
  if (outIdx > 0) writeFileSync(process.argv[outIdx + 1], JSON.stringify(result, null, 2));
  if (section && !process.argv.includes('--no-write')) {
    const { markdown, summary } = section(result);
    writeSection(name, markdown, { summary, command: benchCommand(name) });
  }
}

/** Markdown helpers shared by the sections. */
export const md = {
  /** `median | min | max | n` cells of a stats object. */
  cells: (s, d = 0) => (s ? `${fmt(s.median, d)} | ${fmt(s.min, d)} | ${fmt(s.max, d)} | ${s.n}` : 'n/a | | |'),
  /** peer ÷ Keelson of two stats medians, e.g. `1.3×`. */
  ratio: (peer, keelson) => (peer && keelson && keelson.median > 0 ? `${(peer.median / keelson.median).toFixed(1)}×` : 'n/a'),
  yes: (ok) => (ok === null || ok === undefined ? '—' : ok ? 'yes' : '**no**'),
};

/**
 * For the benches that do not run under `main()`: `fn` (synchronous) runs once when the process exits for any reason
 * (done, thrown, SIGINT/SIGTERM), so a failed or interrupted run still stops what it started.
 */
export function onExitSync(fn) {
  let done = false;
  const once = () => {
    if (done) return;
    done = true;
    try {
      fn();
    } catch (err) {
      console.error(`cleanup failed: ${err?.message ?? err}`);
    }
  };
  process.on('exit', once);
  for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => process.exit(130));
}
