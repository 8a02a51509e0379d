/**
 * A replica killed with `kill -9` → its replacement ready: Keelson (until the replacement answers on the replica's
 * own PORT, and until the status API shows it ready) against pm2 restarting the same tiny server.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  commitAll,
  fmt,
  fmtStats,
  freePort,
  gitInit,
  main,
  md,
  publicPort,
  now,
  onCleanup,
  parseAnswer,
  pollUntil,
  root,
  sleep,
  startKeelson,
  stats,
  tempDir,
  tinyServer,
  waitFor,
  writeTree,
} from './lib.mjs';

const runs = Number(process.env.BENCH_RUNS ?? 7);
const peersDir = join(root, 'bench', '.peers');
const pm2Bin = join(peersDir, 'node_modules', 'pm2', 'bin', 'pm2');

// One replica per run: a replica that crashes again soon backs off (1 s, 2 s, …) by design, like a kubelet.
const appYaml = (port) => `apiVersion: keelson.dev/v1alpha1
kind: App
metadata:
  name: web
spec:
  version: "1.0.0"
  artifact:
    path: ../releases/web
  run:
    command: ["node", "server.js"]
  replicas: ${runs}
  port: ${port}
  readiness:
    http: { path: /healthz }
    periodSeconds: 1
`;
const envYaml = `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata:
  name: dev
spec:
  target:
    local: {}
  apps:
    web: {}
`;

async function keelson() {
  const dir = tempDir('keelson-bench-k2r-');
  const ops = join(dir, 'ops');
  const apiPort = await freePort();
  writeTree(ops, { 'apps/web.yaml': appYaml(await publicPort()), 'environments/dev.yaml': envYaml, 'releases/web/server.js': tinyServer('1.0.0') });
  gitInit(ops);
  commitAll(ops, 'web');
  const k = startKeelson({ repo: ops, stateDir: join(dir, 'state'), apiPort, logFile: join(dir, 'keelson.log') });
  const web = async () => (await k.get('/api/v1/status')).environments[0]?.apps.find((a) => a.name === 'web');
  const allReady = () => waitFor('all replicas ready', async () => {
    const a = await web();
    return a?.health === 'Healthy' && a.replicas.ready === runs && a.replicas.total === runs && a;
  });
  const ids = (await allReady()).instances.map((i) => i.id).sort();
  const toAnswer = [];
  const toStatus = [];
  const toSpawn = [];
  const appStart = [];
  for (const id of ids) {
    await sleep(1200);
    const victim = (await allReady()).instances.find((i) => i.id === id);
    const t0 = now();
    process.kill(victim.pid, 'SIGKILL');
    const [direct, viaStatus] = await Promise.all([
      pollUntil(victim.port, (b) => parseAnswer(b).pid !== victim.pid, { intervalMs: 5, timeoutMs: 30_000 }),
      waitFor(
        'replacement ready in status',
        async () => {
          const i = (await web())?.instances.find((x) => x.id === id);
          return i && i.pid !== victim.pid && i.ready && now();
        },
        { intervalMs: 10, timeoutMs: 30_000 },
      ),
    ]);
    const a = parseAnswer(direct.body);
    toAnswer.push(direct.t - t0);
    toStatus.push(viaStatus - t0);
    toSpawn.push(a.startedAt - t0);
    appStart.push(a.readyAt - a.startedAt);
  }
  await k.stop();
  const r = { toAnswer: stats(toAnswer), toStatus: stats(toStatus), toSpawn: stats(toSpawn), appStart: stats(appStart) };
  console.log(`keelson: kill -9 → replacement answers on its PORT ${fmtStats(r.toAnswer)}`);
  console.log(`  kill → status API shows it ready ${fmtStats(r.toStatus)}`);
  console.log(`  kill → new process started ${fmtStats(r.toSpawn, 'ms', 1)}; app start → listening ${fmtStats(r.appStart, 'ms', 1)}`);
  return r;
}

/** Installs pm2 into bench/.peers (git-ignored) unless it is there; undefined when that is not possible. */
function ensurePm2() {
  if (existsSync(pm2Bin)) return pm2Bin;
  console.log('installing pm2 into bench/.peers …');
  const r = spawnSync('npm', ['install', '--prefix', peersDir, '--no-audit', '--no-fund', '--loglevel=error', 'pm2'], { stdio: 'inherit' });
  return r.status === 0 && existsSync(pm2Bin) ? pm2Bin : undefined;
}

async function pm2Peer() {
  const pm2 = ensurePm2();
  if (!pm2) {
    console.log('pm2 could not be installed; peer skipped');
    return undefined;
  }
  const dir = tempDir('keelson-bench-pm2-');
  const port = await publicPort();
  writeTree(dir, {
    'app/server.js': tinyServer('pm2'),
    'ecosystem.json': JSON.stringify({ apps: [{ name: 'tiny', script: join(dir, 'app/server.js'), cwd: join(dir, 'app'), exec_mode: 'fork', instances: 1, autorestart: true, env: { PORT: String(port) } }] }),
  });
  const env = { ...process.env, PM2_HOME: join(dir, 'pm2-home') };
  const run = (...args) => execFileSync(process.execPath, [pm2, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 60_000 });
  onCleanup(() => run('kill'));
  run('start', join(dir, 'ecosystem.json'));
  let pid = parseAnswer((await pollUntil(port, () => true)).body).pid;
  const toAnswer = [];
  const toSpawn = [];
  const appStart = [];
  for (let i = 0; i < runs; i++) {
    await sleep(1200); // beyond pm2's min_uptime (1 s), so no run counts as an unstable restart
    const t0 = now();
    process.kill(pid, 'SIGKILL');
    const hit = await pollUntil(port, (b) => parseAnswer(b).pid !== pid, { intervalMs: 5, timeoutMs: 30_000 });
    const a = parseAnswer(hit.body);
    toAnswer.push(hit.t - t0);
    toSpawn.push(a.startedAt - t0);
    appStart.push(a.readyAt - a.startedAt);
    pid = a.pid;
  }
  const version = JSON.parse(readFileSync(join(peersDir, 'node_modules', 'pm2', 'package.json'), 'utf8')).version;
  const r = { version, toAnswer: stats(toAnswer), toSpawn: stats(toSpawn), appStart: stats(appStart) };
  console.log(`pm2 ${version}: kill -9 → replacement answers on its PORT ${fmtStats(r.toAnswer)}`);
  console.log(`  kill → new process started ${fmtStats(r.toSpawn, 'ms', 1)}; app start → listening ${fmtStats(r.appStart, 'ms', 1)}`);
  return r;
}

main('kill-to-ready', async () => {
  const k = await keelson();
  const peer = await pm2Peer();
  return { id: 'kill-to-ready', runs, keelson: k, pm2: peer };
}, section);

/** The BENCHMARKS.md section. */
function section(r) {
  const { cells: ms, ratio, yes } = md;
  const k = r.keelson;
  const pm = r.pm2;
  const lines = [
    '## Replica killed → replacement ready (`kill-to-ready`)',
    '',
    `One app with ${r.runs} replicas (http readiness). Each run sends \`kill -9\` to a different replica and measures until`,
    `the replacement answers on the replica's own PORT (polled every 5 ms, a new pid in the answer) and, separately, until`,
    `\`GET /api/v1/status\` shows the replica ready with a new pid (polled every 10 ms). A different replica each run because`,
    `a replica that crashes again within 10 minutes restarts with exponential backoff (1 s, 2 s, …) by design, as a kubelet does;`,
    `this measures the first restart. The peer is pm2 ${pm?.version ?? ''} (fork mode, autorestart, installed into`,
    `\`bench/.peers\` at bench time) restarting the same tiny server, killed the same way, 1.2 s apart (past its min_uptime).`,
    `Goal (issue 2): kill → ready again < 1 s. Times in ms.`,
    '',
    '| | Median | Min | Max | n |',
    '|---|---|---|---|---|',
    `| Keelson: kill → replacement answers on its PORT | ${ms(k.toAnswer)} |`,
    `| Keelson: kill → status API shows it ready | ${ms(k.toStatus)} |`,
    `| — kill → new process started | ${ms(k.toSpawn, 1)} |`,
    `| — app start → listening (the app itself) | ${ms(k.appStart, 1)} |`,
  ];
  if (pm) {
    lines.push(
      `| pm2: kill → replacement answers on its PORT | ${ms(pm.toAnswer)} |`,
      `| — kill → new process started | ${ms(pm.toSpawn, 1)} |`,
      `| — app start → listening (pm2's wrapper included) | ${ms(pm.appStart, 1)} |`,
      '',
      `pm2 ÷ Keelson, kill → answering: ${ratio(pm.toAnswer, k.toAnswer)}. pm2's app start includes its wrapper`,
      `(ProcessContainerFork) loading before the app; Keelson execs the declared command directly.`,
    );
  } else lines.push('', '_pm2 could not be installed in this run; no peer figures._');
  lines.push('', `Goals: kill → answering < 1 s: ${yes(k.toAnswer.median < 1000)}; kill → status API ready < 1 s: ${yes(k.toStatus.median < 1000)}.`);
  const summary = [
    { measure: 'kill -9 → replacement answers on its PORT', value: `${fmt(k.toAnswer.median)} ms`, goal: '< 1000 ms', met: k.toAnswer.median < 1000, peer: pm ? `pm2 ${fmt(pm.toAnswer.median)} ms` : 'pm2 not measured', ratio: ratio(pm?.toAnswer, k.toAnswer) },
    { measure: 'kill -9 → status API shows it ready', value: `${fmt(k.toStatus.median)} ms`, goal: '< 1000 ms', met: k.toStatus.median < 1000, peer: '', ratio: '' },
  ];
  return { markdown: lines.join('\n'), summary };
}
