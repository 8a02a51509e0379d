/**
 * Many apps: cold render and plan (the pure stages, in process), `keelson up` → every app created and ready,
 * engine and proxy RSS after settling, idle CPU, and the no-op reconcile as the app count doubles.
 * Half of the apps have a public port (a shared tiny HTTP server); the other half are `node -e` workers.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  commitAll,
  cpuTicks,
  dist,
  fmt,
  fmtStats,
  freePort,
  getJson,
  gitInit,
  main,
  publicPort,
  now,
  rssKiB,
  sleep,
  startKeelson,
  stats,
  tempDir,
  tinyServer,
  waitFor,
  writeTree,
} from './lib.mjs';

const sizes = (process.env.BENCH_SIZES ?? '100,200,400').split(',').map(Number);
const headline = Number(process.env.BENCH_HEADLINE ?? 200);
const runs = Number(process.env.BENCH_RUNS ?? 7);
const coldRuns = Number(process.env.BENCH_COLD_RUNS ?? 5);
// No-op syncs are cheap and noisy on a shared machine: more samples.
const syncRuns = 3 * runs;

const { ProxyClient } = await import(dist('targets/local/proxy/client.js'));

const appName = (i) => `app-${String(i).padStart(4, '0')}`;

async function opsRepository(dir, n) {
  const files = { 'releases/tiny/server.js': tinyServer('1.0.0') };
  let env = 'apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: dev\nspec:\n  target:\n    local: {}\n  apps:\n';
  for (let i = 0; i < n; i++) {
    const name = appName(i);
    const served = i % 2 === 0;
    const run = served ? 'command: ["node", "server.js"]' : 'command: ["node", "-e", "setInterval(() => {}, 1 << 30)"]';
    files[`apps/${name}.yaml`] = `apiVersion: keelson.dev/v1alpha1
kind: App
metadata:
  name: ${name}
spec:
  version: "1.0.0"
  artifact:
    path: ../releases/tiny
  run:
    ${run}
  replicas: 1
${served ? `  port: ${await publicPort()}\n` : ''}`;
    env += `    ${name}: {}\n`;
  }
  files['environments/dev.yaml'] = env;
  writeTree(dir, files);
  gitInit(dir);
  commitAll(dir, `${n} apps`);
}

/** The pure stages, each run in a fresh process (a cold first render, as in an engine that just started). */
function pureStages(ops) {
  const samples = [];
  for (let i = 0; i < runs; i++) {
    const out = execFileSync(process.execPath, [join(import.meta.dirname, 'pure-stages.mjs'), ops, '5'], { encoding: 'utf8' });
    samples.push(JSON.parse(out.trim().split('\n').pop()));
  }
  const median = (k) => stats(samples.map((s) => s[k].median));
  return {
    renderFirst: stats(samples.map((s) => s.renderFirst)),
    planColdFirst: stats(samples.map((s) => s.planColdFirst)),
    planNoopFirst: stats(samples.map((s) => s.planNoopFirst)),
    renderWarm: median('renderWarm'),
    planColdWarm: median('planColdWarm'),
    planNoopWarm: median('planNoopWarm'),
  };
}

/** `keelson up` on a fresh state dir until every app is Healthy; times come from the engine's own sync record. */
async function coldUp(dir, ops, n, i) {
  const apiPort = await freePort();
  const t0 = now();
  const k = startKeelson({ repo: ops, stateDir: join(dir, `state-${i}`), apiPort, poll: '1s', logFile: join(dir, `keelson-${i}.log`) });
  const apiUp = await waitFor('API up', async () => (await fetch(`${k.api}/healthz`)).ok && now(), { intervalMs: 20 });
  await waitFor(`${n} apps healthy`, async () => {
    const env = (await k.get('/api/v1/status')).environments[0];
    return env?.apps.length === n && env.apps.every((a) => a.health === 'Healthy' && a.sync === 'Synced');
  }, { timeoutMs: 300_000, intervalMs: 250 });
  const [first] = (await k.get('/api/v1/history?env=dev&limit=1000')).syncs.slice(-1);
  const syncStart = Date.parse(first.startedAt);
  return { k, apiUp: apiUp - t0, toSyncStart: syncStart - t0, syncMs: first.durationMs, toAllCreated: syncStart + first.durationMs - t0, result: first.result };
}

const pidsOf = async (k) => (await k.get('/api/v1/status')).environments[0].apps.flatMap((a) => a.instances.map((x) => x.pid)).sort().join(',');

async function timed(fn) {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

async function steadyState(k, n) {
  await sleep(3000);
  const proxyPid = (await new ProxyClient(join(k.stateDir, 'proxy.sock')).health()).pid;
  const c0 = cpuTicks(k.pid);
  const p0 = cpuTicks(proxyPid);
  const t0 = performance.now();
  const rss = [];
  const proxyRss = [];
  for (let i = 0; i < 5; i++) {
    await sleep(1000);
    rss.push(rssKiB(k.pid) / 1024);
    proxyRss.push(rssKiB(proxyPid) / 1024);
  }
  const window = performance.now() - t0;
  const idleCpu = ((cpuTicks(k.pid) - c0) * 10) / window; // ticks are 10 ms: fraction of one core
  const proxyIdleCpu = ((cpuTicks(proxyPid) - p0) * 10) / window;

  const before = await pidsOf(k);
  const sync = [];
  const plan = [];
  const floor = [];
  for (let i = 0; i < syncRuns; i++) {
    await sleep(100);
    floor.push(await timed(async () => getJson(`${k.api}/healthz`)));
    plan.push(await timed(async () => k.get('/api/v1/environments/dev/plan')));
    sync.push(
      await timed(async () => {
        const r = await k.post('/api/v1/environments/dev/sync');
        if (r.result !== 'Unchanged') throw new Error(`a no-op sync changed something: ${JSON.stringify(r)}`);
      }),
    );
  }
  const untouched = (await pidsOf(k)) === before;
  if (!untouched) throw new Error(`no-op syncs touched processes at ${n} apps`);
  return { rss: stats(rss), rssAfterSyncsMiB: rssKiB(k.pid) / 1024, proxyRss: stats(proxyRss), idleCpu, proxyIdleCpu, noopSync: stats(sync), plan: stats(plan), httpFloor: stats(floor), untouched };
}

main('scale', async () => {
  const results = [];
  for (const n of sizes) {
    const dir = tempDir(`keelson-bench-scale-${n}-`);
    const ops = join(dir, 'ops');
    await opsRepository(ops, n);
    const pure = pureStages(ops);
    console.log(`${n} apps: first render in a fresh process ${fmtStats(pure.renderFirst, 'ms', 1)}; warm render ${fmtStats(pure.renderWarm, 'ms', 1)}`);
    console.log(`  plan from nothing: first ${fmtStats(pure.planColdFirst, 'ms', 2)}, warm ${fmtStats(pure.planColdWarm, 'ms', 2)}; no-op plan: first ${fmtStats(pure.planNoopFirst, 'ms', 2)}, warm ${fmtStats(pure.planNoopWarm, 'ms', 2)}`);
    const cold = [];
    const times = n === headline ? coldRuns : 1;
    let last;
    for (let i = 0; i < times; i++) {
      const c = await coldUp(dir, ops, n, i);
      cold.push(c);
      if (i < times - 1) await c.k.stop();
      last = c.k;
      console.log(`  cold up #${i + 1}: API up ${fmt(c.apiUp)} ms, first sync starts ${fmt(c.toSyncStart)} ms, all ${n} apps created and ready ${fmt(c.toAllCreated)} ms (${c.result})`);
    }
    const steady = await steadyState(last, n);
    await last.stop();
    const up = { apiUp: stats(cold.map((c) => c.apiUp)), toSyncStart: stats(cold.map((c) => c.toSyncStart)), toAllCreated: stats(cold.map((c) => c.toAllCreated)) };
    console.log(`  engine RSS ${fmtStats(steady.rss, 'MiB', 1)} (after the syncs ${fmt(steady.rssAfterSyncsMiB, 1)}), proxy RSS ${fmtStats(steady.proxyRss, 'MiB', 1)}; idle CPU engine ${fmt(steady.idleCpu * 100, 1)}% proxy ${fmt(steady.proxyIdleCpu * 100, 1)}% of a core`);
    console.log(`  no-op sync via API ${fmtStats(steady.noopSync, 'ms', 1)}; GET plan ${fmtStats(steady.plan, 'ms', 1)}; GET /healthz ${fmtStats(steady.httpFloor, 'ms', 1)}; processes untouched: ${steady.untouched}`);
    results.push({ apps: n, pure, up, steady });
  }
  return { id: 'scale', runs, syncRuns, coldRuns, headline, results };
});
