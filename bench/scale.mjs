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
  md,
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
}, section);

/** The BENCHMARKS.md section. */
function section(sc) {
  const { yes } = md;
  const sizes = sc.results.map((r) => r.apps);
  const row = (label, f) => `| ${label} | ${sc.results.map(f).join(' | ')} |`;
  const cell = (s, d = 0) => `${fmt(s.median, d)} (${fmt(s.min, d)}–${fmt(s.max, d)}, n=${s.n})`;
  const headlineRow = sc.results.find((r) => r.apps === sc.headline) ?? sc.results[0];
  const biggest = sc.results.at(-1);
  const lines = [
    '## Many apps (`scale`)',
    '',
    `Generated ops repositories of ${sizes.join(', ')} apps in one environment, one file per app, 1 replica each: even apps`,
    `serve HTTP on a public port (a shared tiny server file, default tcp readiness), odd apps are \`node -e\` workers.`,
    `Render and plan are the pure stages, imported from \`dist/\` and run in a fresh process each time (${sc.runs} processes; the`,
    `first call in a process is the cold figure an engine pays at start, the warm one is the median of 5 later calls).`,
    `\`keelson up\` times run from spawning the CLI on a fresh state dir, and use the engine's own sync record for when the`,
    `first sync started and finished (all apps created and ready); ${sc.coldRuns} cold starts at ${sc.headline} apps, one at the other sizes.`,
    `Then, settled (3 s), the engine's VmRSS (read once a second for 5 s) and its CPU use over those 5 s (it still polls git`,
    `every 1 s, resyncs every 1 s and checks replicas every 200 ms), and ${sc.syncRuns} manual no-op syncs: \`POST /api/v1/environments/dev/sync\` runs one reconcile`,
    `(observe, plan, nothing to apply) and answers when it is done, so it includes HTTP, auth and audit overhead; \`GET /healthz\` is`,
    `the HTTP floor and \`GET …/plan\` is observe + plan without the sync's bookkeeping. The bench checks that no replica pid changed.`,
    `Goals (issue 2): no-op reconcile of 400 apps < 200 ms, engine RSS < 150 MiB (at ${sc.headline} apps). Cells: median (min–max, n); times in ms.`,
    '',
    `| Apps | ${sizes.join(' | ')} |`,
    `|---|${sizes.map(() => '---').join('|')}|`,
    row('render, first call in a process', (r) => cell(r.pure.renderFirst, 1)),
    row('render, warm', (r) => cell(r.pure.renderWarm, 1)),
    row('plan from nothing (all create), first call', (r) => cell(r.pure.planColdFirst, 2)),
    row('no-op plan, warm', (r) => cell(r.pure.planNoopWarm, 2)),
    row('`keelson up` → API answers', (r) => cell(r.up.apiUp)),
    row('`keelson up` → first sync starts (clone, render, plan)', (r) => cell(r.up.toSyncStart)),
    row('`keelson up` → all apps created and ready', (r) => cell(r.up.toAllCreated)),
    row('engine RSS settled (MiB)', (r) => cell(r.steady.rss, 1)),
    row('engine RSS after the no-op syncs (MiB)', (r) => fmt(r.steady.rssAfterSyncsMiB, 1)),
    row('proxy RSS (MiB)', (r) => cell(r.steady.proxyRss, 1)),
    row('engine idle CPU (% of a core)', (r) => fmt(r.steady.idleCpu * 100, 1)),
    row('proxy idle CPU (% of a core)', (r) => fmt(r.steady.proxyIdleCpu * 100, 1)),
    row('no-op sync, `POST …/sync`', (r) => cell(r.steady.noopSync, 1)),
    row('`GET …/plan` (observe + plan)', (r) => cell(r.steady.plan, 1)),
    row('`GET /healthz` (HTTP floor)', (r) => cell(r.steady.httpFloor, 1)),
    row('replicas untouched by the no-op syncs', (r) => (r.steady.untouched ? 'yes' : '**no**')),
  ];
  const growth = (f) => sc.results.slice(1).map((r, i) => `${sc.results[i].apps} → ${r.apps}: ${(f(r).median / f(sc.results[i]).median).toFixed(1)}×`).join(', ');
  if (sc.results.length > 1) {
    lines.push(
      '',
      `Growth as the app count doubles (2.0× is linear): no-op sync through the API ${growth((r) => r.steady.noopSync)};`,
      `the in-process no-op plan ${growth((r) => r.pure.planNoopWarm)}. Both carry the noise of other work on the machine (see the load average).`,
    );
  }
  lines.push('', `Goals: no-op reconcile of ${biggest.apps} apps < 200 ms: ${yes(biggest.steady.noopSync.median < 200)}; engine RSS at ${headlineRow.apps} apps < 150 MiB: ${yes(headlineRow.steady.rss.median < 150)}.`);
  const summary = [
    { measure: `engine RSS, ${headlineRow.apps} apps, settled`, value: `${fmt(headlineRow.steady.rss.median, 1)} MiB`, goal: '< 150 MiB', met: headlineRow.steady.rss.median < 150, peer: '', ratio: '' },
    { measure: `\`keelson up\` → all ${headlineRow.apps} apps created and ready`, value: `${fmt(headlineRow.up.toAllCreated.median)} ms`, goal: '', met: null, peer: '', ratio: '' },
    { measure: `no-op reconcile, ${biggest.apps} apps (\`POST …/sync\`, HTTP included)`, value: `${fmt(biggest.steady.noopSync.median, 1)} ms`, goal: '< 200 ms', met: biggest.steady.noopSync.median < 200, peer: '', ratio: '' },
  ];
  return { markdown: lines.join('\n'), summary };
}
