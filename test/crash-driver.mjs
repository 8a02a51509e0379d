/**
 * The crash driver (issue 10, item 3): a real `keelson up` is killed with SIGKILL at random moments (a seeded PRNG;
 * the seed is printed) while blue/green and canary rollouts (and a preSync hook) run on the local target; after each
 * kill (now and then after a revert committed while the engine is down; some bumps are reverts themselves) the
 * engine is restarted and the driver checks, once the engine says every app is Synced:
 * - one version per app: every replica of an app runs the desired version, as many as the spec asks;
 * - no orphan process: every replica recorded in the store is alive and shown live; no process runs with its cwd
 *   under the state directory's releases that the store does not know;
 * - inventory equal to live: the store's inventory names the version that runs;
 * - history intact: the store opens (`pragma integrity_check`) and the history still lists every completed sync;
 * - no request failed through the proxy (a request loop per app for the whole run).
 * Used by test/e2e/crash-driver.test.ts (a few kills) and bench/crash-driver.mjs (a longer run).
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { freePort, git, sleep, waitFor, writeTree as write } from '../bench/lib.mjs';
import { prng } from './crash-lib.mjs';

const root = resolve(import.meta.dirname, '..');
const bin = join(root, 'bin', 'keelson');

export { prng };

const server = (version) => `const http = require('node:http');
const s = http.createServer((req, res) => res.end(req.url === '/healthz' ? 'ok' : 'version ${version}\\n'));
s.keepAliveTimeout = 2000;
s.listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => { s.close(() => process.exit(0)); s.closeIdleConnections(); });
`;

function requestLoop(port) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
  const failures = [];
  let total = 0;
  let running = true;
  const one = () =>
    new Promise((res) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/', agent, timeout: 10_000 }, (r) => {
        let body = '';
        r.setEncoding('utf8');
        r.on('data', (c) => (body += c));
        r.on('end', () => {
          if (r.statusCode !== 200) failures.push({ at: Date.now(), error: `${r.statusCode} ${body.trim()}` });
          res();
        });
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (err) => {
        failures.push({ at: Date.now(), error: err.code ?? err.message });
        res();
      });
    });
  const done = (async () => {
    while (running) {
      await one();
      total++;
      await sleep(20);
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

/** Whether `pid` runs (a zombie does not). */
const alive = (pid) => {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
};

/** Pids of live processes whose cwd is under `dir`. */
function processesUnder(dir) {
  const out = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cwd = readlinkSync(`/proc/${name}/cwd`);
      if ((cwd === dir || cwd.startsWith(`${dir}/`)) && alive(Number(name))) out.push(Number(name));
    } catch {
      /* gone, or not ours to read */
    }
  }
  return out.sort((a, b) => a - b);
}

/**
 * Runs the driver. `strategies`: which of rolling / blueGreen / canary get an app (default blueGreen and canary).
 * Returns `{ seed, kills, survived, divergences: [{kill, app?, check, detail}], requests, failedRequests,
 * failures, convergenceMs: number[] }`. Throws only when the engine does not converge at all within `convergeMs`
 * (that is recorded as a divergence first when `keepGoing`).
 */
export async function runCrashDriver(o = {}) {
  const seed = o.seed ?? (Date.now() % 2 ** 31);
  const kills = o.kills ?? 5;
  const strategies = o.strategies ?? ['blueGreen', 'canary'];
  const maxDelayMs = o.maxDelayMs ?? 5000;
  const convergeMs = o.convergeMs ?? 90_000;
  const log = o.log ?? ((s) => console.log(s));
  const rand = prng(seed);
  log(`crash driver: seed ${seed}, ${kills} kills, strategies ${strategies.join(', ')}`);

  const tmp = mkdtempSync(join(tmpdir(), 'keelson-crash-'));
  const ops = join(tmp, 'ops');
  const state = join(tmp, 'state');
  const token = `kls_crash_driver_operator_${seed}_0123456789`;
  const apiPort = await freePort();
  const api = `http://127.0.0.1:${apiPort}`;
  const auth = { authorization: `Bearer ${token}` };
  const names = { rolling: 'rl', blueGreen: 'bg', canary: 'cy' };
  const apps = [];
  for (const s of strategies) apps.push({ name: names[s], strategy: s, port: await freePort(), version: 1, replicas: o.replicas ?? 2 });
  const rollout = {
    rolling: '    strategy: rolling\n',
    blueGreen: '    strategy: blueGreen\n    blueGreen: { autoPromotionEnabled: true, scaleDownDelaySeconds: 1 }\n',
    canary: '    strategy: canary\n    canary:\n      steps:\n        - setWeight: 50\n        - pause: { durationSeconds: 2 }\n',
  };
  const appYaml = (a) => `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: ${a.name} }
spec:
  version: "1"
  artifact: { path: "../releases/{version}" }
  run: { command: ["node", "server.js"] }
  replicas: ${a.replicas}
  port: ${a.port}
  readiness: { http: { path: /healthz }, periodSeconds: 1 }
  terminationGracePeriodSeconds: 5
${a.strategy === 'blueGreen' ? '  hooks:\n    preSync:\n      - name: slow\n        exec: { command: ["node", "-e", "setTimeout(() => {}, 1500)"] }\n' : ''}  rollout:
    progressDeadlineSeconds: 60
${rollout[a.strategy]}`;
  const envYaml = () =>
    `apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: dev }\nspec:\n  apps:\n${apps.map((a) => `    ${a.name}: { version: "${a.version}" }\n`).join('')}`;
  let top = 1;
  const files = { 'environments/dev.yaml': envYaml(), 'releases/1/server.js': server('1') };
  for (const a of apps) files[`apps/${a.name}.yaml`] = appYaml(a);
  write(ops, files);
  git(ops, 'init', '-q', '-b', 'main');
  git(ops, 'config', 'gc.auto', '0');
  git(ops, 'add', '-A');
  git(ops, 'commit', '-q', '-m', 'initial');

  let engine;
  let starts = 0;
  const up = () => {
    const child = spawn(process.execPath, [bin, 'up', '--repo', ops, '--state-dir', state, '--listen', `127.0.0.1:${apiPort}`, '--poll', '1s'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { KEELSON_LOG_LEVEL: 'info', KEELSON_ALLOW_ROOT_APPS: 'true', ...process.env, KEELSON_TOKEN_OPERATOR: token },
    });
    const chunks = [];
    child.stdout.on('data', (c) => chunks.push(c));
    child.stderr.on('data', (c) => chunks.push(c));
    const file = join(tmp, `keelson-${starts++}.log`);
    child.on('exit', () => writeFileSync(file, Buffer.concat(chunks)));
    engine = child;
  };
  const killEngine = () =>
    new Promise((res) => {
      if (engine.exitCode !== null || engine.signalCode !== null) return res();
      engine.once('exit', () => res());
      engine.kill('SIGKILL');
    });
  const get = async (path) => {
    const res = await fetch(`${api}${path}`, { headers: auth });
    if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    return res.json();
  };
  const status = async () => (await get('/api/v1/status')).environments[0];
  /** Every app Synced and Healthy at its desired version with its replicas: the engine says it converged. */
  const converged = async () => {
    const env = await status();
    if (!env) return false;
    for (const a of apps) {
      const s = env.apps.find((x) => x.name === a.name);
      if (!s || s.sync !== 'Synced' || s.health !== 'Healthy' || s.version !== String(a.version)) return false;
    }
    return env;
  };

  const result = { seed, kills, survived: 0, midRollout: 0, divergences: [], requests: 0, failedRequests: 0, failures: [], convergenceMs: [], stateDir: state, tmp };
  const diverged = (kill, check, detail, app) => {
    result.divergences.push({ kill, app, check, detail });
    log(`  DIVERGENCE after kill ${kill}${app ? ` (${app})` : ''}: ${check}: ${detail}`);
  };
  let completedSyncs = new Set();

  /** The checks once; returns what diverged (nothing recorded yet). */
  const checkOnce = async (kill, env) => {
    const found = [];
    const diverged = (kill, check, detail, app) => found.push({ kill, app, check, detail });
    // One version per app, as many replicas as asked.
    for (const a of apps) {
      const s = env.apps.find((x) => x.name === a.name);
      const versions = [...new Set(s.instances.map((i) => i.version))];
      if (versions.length !== 1 || versions[0] !== String(a.version)) diverged(kill, 'one version per app', `instances run ${JSON.stringify(s.instances.map((i) => i.version))}, desired ${a.version}`, a.name);
      if (s.instances.length !== a.replicas) diverged(kill, 'replica count', `${s.instances.length} instances, spec ${a.replicas}`, a.name);
    }
    // The store: opens, intact, its replicas alive and live, its inventory the live version.
    let db;
    try {
      db = new Database(join(state, 'keelson.db'), { readonly: true, fileMustExist: true });
      const integrity = db.pragma('integrity_check', { simple: true });
      if (integrity !== 'ok') diverged(kill, 'history intact', `integrity_check: ${integrity}`);
      const rows = db.prepare("select app, pid, version from replicas where env = 'dev'").all();
      const livePids = new Set(env.apps.flatMap((s) => s.instances.map((i) => i.pid)));
      for (const r of rows) {
        if (!alive(r.pid)) diverged(kill, 'no orphan process', `recorded replica pid ${r.pid} (${r.version}) is not running`, r.app);
        else if (!livePids.has(r.pid)) diverged(kill, 'no orphan process', `recorded replica pid ${r.pid} (${r.version}) runs but the engine does not show it`, r.app);
      }
      const recorded = new Set(rows.map((r) => r.pid));
      for (const pid of processesUnder(join(state, 'releases'))) {
        if (!recorded.has(pid)) {
          let cmd = '';
          try {
            cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
          } catch {
            /* gone */
          }
          if (alive(pid)) diverged(kill, 'no orphan process', `pid ${pid} (${cmd}, cwd ${readlinkSync(`/proc/${pid}/cwd`)}) runs in a release but the store does not know it`);
        }
      }
      for (const a of apps) {
        const inv = db.prepare("select version from inventory where env = 'dev' and app = ?").get(a.name);
        if (!inv || inv.version !== String(a.version)) diverged(kill, 'inventory equal to live', `inventory says ${inv?.version ?? 'nothing'}, live runs ${a.version}`, a.name);
      }
    } catch (err) {
      diverged(kill, 'history intact', `the store does not open: ${err.message}`);
    } finally {
      db?.close();
    }
    // History: every sync seen completed before is still listed.
    const syncs = (await get('/api/v1/history?env=dev&limit=1000')).syncs;
    const ids = new Set(syncs.map((s) => s.id));
    const lost = [...completedSyncs].filter((id) => !ids.has(id));
    if (lost.length) diverged(kill, 'history intact', `completed syncs ${lost.join(', ')} no longer listed`);
    else completedSyncs = ids;
    return found;
  };
  /**
   * The checks until they pass or `settleMs` passed (the engine may say Synced a moment before it writes its
   * inventory, or while an old blue/green set waits out its scale-down delay): what remains is a divergence.
   */
  const check = async (kill, env) => {
    const until = Date.now() + (o.settleMs ?? 10_000);
    for (;;) {
      const found = await checkOnce(kill, env);
      if (!found.length) return;
      if (Date.now() > until) {
        for (const d of found) diverged(d.kill, d.check, d.detail, d.app);
        return;
      }
      await sleep(500);
      env = (await converged().catch(() => undefined)) || env;
    }
  };

  const loops = apps.map((a) => ({ app: a.name, loop: undefined }));
  try {
    up();
    await waitFor('the first deploy', converged, { timeoutMs: convergeMs, intervalMs: 100 });
    for (const l of loops) l.loop = requestLoop(apps.find((a) => a.name === l.app).port);
    for (let k = 1; k <= kills; k++) {
      // A new version of one or two apps, then a kill at a random moment of its rollout.
      const bump = apps.filter(() => rand() < 0.6);
      if (!bump.length) bump.push(apps[Math.floor(rand() * apps.length)]);
      top++;
      // Now and then a revert: back to the version the app ran before (the case issue 10 names for rolling updates).
      const moves = bump.map((a) => {
        const revert = a.prev !== undefined && rand() < 0.3;
        const to = revert ? a.prev : top;
        a.prev = a.version;
        a.version = to;
        return `${a.name} (${a.strategy}) → ${to}${revert ? ' (revert)' : ''}`;
      });
      write(ops, { 'environments/dev.yaml': envYaml(), [`releases/${top}/server.js`]: server(String(top)) });
      git(ops, 'add', '-A');
      git(ops, 'commit', '-q', '-m', moves.join(', '));
      const delay = Math.floor(rand() * maxDelayMs);
      await sleep(delay);
      // Where the kill lands: while some bumped app still runs another version (or none yet), a rollout is under way.
      const before = await status().catch(() => undefined);
      const moving = bump.filter((a) => {
        const s = before?.apps.find((x) => x.name === a.name);
        return !s || s.instances.some((i) => i.version !== String(a.version)) || s.version !== String(a.version);
      });
      await killEngine();
      if (moving.length) result.midRollout++;
      log(`kill ${k}: ${moves.join(', ')}, SIGKILL ${delay} ms after the commit${moving.length ? `, during the rollout of ${moving.map((a) => a.name).join(', ')}` : ', after the rollout'}`);
      // Now and then the operator reverts while the engine is down: the next engine finds a half-done rollout whose
      // target is no longer wanted.
      if (rand() < 0.3) {
        for (const a of bump) [a.version, a.prev] = [a.prev, a.version];
        write(ops, { 'environments/dev.yaml': envYaml() });
        git(ops, 'add', '-A');
        git(ops, 'commit', '-q', '-m', `revert ${bump.map((a) => a.name).join(', ')}`);
        log(`  while down: revert ${bump.map((a) => `${a.name} → ${a.version}`).join(', ')}`);
      }
      const t0 = Date.now();
      up();
      let env;
      try {
        env = await waitFor(`convergence after kill ${k}`, converged, { timeoutMs: convergeMs, intervalMs: 100 });
      } catch (err) {
        const now = await status().catch(() => undefined);
        const apps = (now?.apps ?? []).map((s) => `${s.name} ${s.sync}/${s.health} at ${s.version}, instances ${JSON.stringify(s.instances.map((i) => i.version))}`);
        diverged(k, 'converges', `${err.message.split(';')[0]}; ${apps.join('; ')}`);
        for (const s of now?.apps ?? []) log(`    ${s.name}: ${s.sync}/${s.health} ${s.version} instances ${JSON.stringify(s.instances.map((i) => i.version))} ${s.message ?? ''}`);
        if (!o.keepGoing) break;
        continue;
      }
      result.convergenceMs.push(Date.now() - t0);
      result.survived++;
      await check(k, env);
      log(`  converged in ${Date.now() - t0} ms`);
    }
  } finally {
    for (const l of loops) {
      if (!l.loop) continue;
      await l.loop.stop();
      result.requests += l.loop.total;
      result.failedRequests += l.loop.failures.length;
      for (const f of l.loop.failures) result.failures.push({ app: l.app, ...f });
    }
    if (engine) await killEngine();
    try {
      execFileSync(process.execPath, [bin, 'down', '--state-dir', state], { stdio: 'ignore', timeout: 60_000 });
    } catch {
      /* nothing ran */
    }
    if (!o.keepTmp && !process.env.KEELSON_KEEP_TMP) rmSync(tmp, { recursive: true, force: true });
  }
  log(`crash driver (seed ${seed}): ${result.survived}/${kills} kills survived, ${result.divergences.length} divergences, ${result.failedRequests}/${result.requests} requests failed`);
  return result;
}
