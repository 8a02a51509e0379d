// Dashboard first paint with many apps, in real Chromium against a real `keelson up`.
// Usage: npm run build && node bench/dashboard.mjs [apps=10000] [envs=2]
// Apps are scaled to zero (no processes) so 10,000 of them fit on one machine; every one is rendered, planned,
// applied, recorded and shown like any other app.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { finish, fmt, md } from './lib.mjs';

const { positionals } = parseArgs({ allowPositionals: true, options: { out: { type: 'string' }, 'no-write': { type: 'boolean' } } });
const apps = Number(positionals[0] ?? process.env.BENCH_DASHBOARD_APPS ?? 10_000);
const envs = Number(positionals[1] ?? process.env.BENCH_DASHBOARD_ENVS ?? 2);
const root = resolve(import.meta.dirname, '..');
const bin = join(root, 'bin', 'keelson');
const tmp = mkdtempSync(join(tmpdir(), 'keelson-bench-ui-'));
const ops = join(tmp, 'ops');
const state = join(tmp, 'state');

const git = (...args) => execFileSync('git', ['-c', 'user.name=Bench', '-c', 'user.email=bench@keelson.dev', ...args], { cwd: ops, stdio: 'pipe' });
const port = () => new Promise((res) => { const s = createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); }); });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

mkdirSync(join(ops, 'apps'), { recursive: true });
mkdirSync(join(ops, 'environments'), { recursive: true });
mkdirSync(join(ops, 'releases', 'noop'), { recursive: true });
writeFileSync(join(ops, 'releases', 'noop', 'README'), 'scaled to zero\n');
const names = Array.from({ length: apps }, (_, i) => `app-${String(i).padStart(5, '0')}`);
writeFileSync(
  join(ops, 'apps', 'all.yaml'),
  names.map((n) => `apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata:\n  name: ${n}\nspec:\n  version: "1.0.0"\n  artifact:\n    path: ../releases/noop\n  run:\n    command: ["node", "-e", "0"]\n  replicas: 0\n`).join('---\n'),
);
for (let e = 0; e < envs; e++) {
  writeFileSync(join(ops, 'environments', `env${e}.yaml`), `apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: env${e}\nspec:\n  apps:\n${names.map((n) => `    ${n}: {}`).join('\n')}\n`);
}
execFileSync('git', ['init', '-q', '-b', 'main'], { cwd: ops });
git('add', '-A');
git('commit', '-q', '-m', `${apps} apps`);

const apiPort = await port();
const api = `http://127.0.0.1:${apiPort}`;
const t0 = Date.now();
const keelson = spawn(process.execPath, [bin, 'up', '--repo', ops, '--state-dir', state, '--listen', `127.0.0.1:${apiPort}`, '--poll', '30s'], { stdio: ['ignore', 'ignore', 'inherit'] });
let browser;
try {
  // Wait until every app of every environment is deployed (Synced).
  for (;;) {
    const m = await fetch(`${api}/api/v1/matrix?sync=Synced&limit=1`).then((r) => r.json()).catch(() => undefined);
    if (m && m.counts.sync.Synced === apps * envs) break;
    if (Date.now() - t0 > 30 * 60_000) throw new Error(`not deployed after 30 min: ${JSON.stringify(m?.counts)}`);
    await sleep(500);
  }
  const deployS = (Date.now() - t0) / 1000;

  // Server side: one page of the matrix, warm.
  const apiTimes = [];
  for (let i = 0; i < 20; i++) {
    const s = performance.now();
    await fetch(`${api}/api/v1/matrix?offset=${(i * 100) % apps}&limit=100`).then((r) => r.json());
    apiTimes.push(performance.now() - s);
  }
  apiTimes.sort((a, b) => a - b);

  const profile = mkdtempSync(join(tmpdir(), 'keelson-bench-chromium-'));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage();
  const runs = [];
  for (let i = 0; i < 5; i++) {
    await page.goto('about:blank');
    const start = Date.now();
    await page.goto(`${api}/`);
    await page.locator('td.cell').first().waitFor();
    // Time from navigation start to the first frame painted after the matrix rows are in the DOM.
    const ms = await page.evaluate(() => new Promise((res) => requestAnimationFrame(() => requestAnimationFrame(() => res(performance.now())))));
    runs.push({ firstPaintMs: ms, wallMs: Date.now() - start });
  }
  const fp = runs.map((r) => r.firstPaintMs).sort((a, b) => a - b);
  const rows = await page.locator('table.matrix tbody tr').count();
  const caption = await page.locator('table.matrix caption').innerText();
  console.log(`dashboard bench: ${apps} apps × ${envs} environments (${apps * envs} cells)`);
  console.log(`  deploy (all Synced):            ${deployS.toFixed(1)} s`);
  console.log(`  GET /api/v1/matrix (100 rows):  median ${apiTimes[10].toFixed(1)} ms, p95 ${apiTimes[18].toFixed(1)} ms (warm)`);
  console.log(`  first paint of the matrix:      median ${fp[2].toFixed(0)} ms, worst ${fp[4].toFixed(0)} ms (navigation start → first frame with rows, 5 loads)`);
  console.log(`  rows in the DOM: ${rows} (server-side pagination); caption: "${caption}"`);
  await browser.close();
  browser = undefined;
  rmSync(profile, { recursive: true, force: true });
  const result = { apps, envs, deploySeconds: deployS, matrixApi: { median: apiTimes[10], p95: apiTimes[18], n: apiTimes.length }, firstPaint: { median: fp[2], min: fp[0], max: fp[4], n: fp.length }, runs, rows, caption };
  result.goals = { firstPaint: fp[2] < 1000, at10000: apps >= 10_000 };
  finish('dashboard', result, section);
} finally {
  await browser?.close().catch(() => undefined);
  keelson.kill('SIGTERM');
  await new Promise((r) => keelson.once('exit', r));
  execFileSync(process.execPath, [bin, 'down', '--state-dir', state], { stdio: 'ignore' });
  if (!process.env.KEELSON_KEEP_TMP) rmSync(tmp, { recursive: true, force: true });
}

/** The BENCHMARKS.md section. */
function section(r) {
  const { yes } = md;
  const markdown = [
    '## Dashboard first paint (`dashboard`)',
    '',
    `\`keelson up\` on an ops repository of ${r.apps.toLocaleString('en')} apps in ${r.envs} environment${r.envs === 1 ? '' : 's'} (${(r.apps * r.envs).toLocaleString('en')} cells of the matrix); the apps are`,
    `scaled to zero (no processes) so that many fit on one machine, and are otherwise rendered, planned, applied, recorded`,
    `and shown like any other app. Once every cell is Synced, headless Chromium (Debian's \`chromium\`, driven by`,
    `\`playwright-core\`) loads the dashboard ${r.firstPaint.n} times; first paint is from navigation start to the first frame painted after`,
    `the matrix rows are in the DOM (two \`requestAnimationFrame\`s after the first \`td.cell\`). The server pages the matrix`,
    `(${r.rows} rows in the DOM). Goal (issue 6): first paint < 1 s with 10,000 apps.`,
    ...(r.apps < 10_000 ? ['', `_Measured at ${r.apps.toLocaleString('en')} apps (\`BENCH_DASHBOARD_APPS\`), not the 10,000 of the goal._`] : []),
    '',
    '| | Value |',
    '|---|---|',
    `| \`keelson up\` → every cell Synced | ${fmt(r.deploySeconds, 1)} s |`,
    `| \`GET /api/v1/matrix\` (100 rows, warm), median / p95 of ${r.matrixApi.n} | ${fmt(r.matrixApi.median, 1)} / ${fmt(r.matrixApi.p95, 1)} ms |`,
    `| first paint of the matrix, median (min–max, n) | ${fmt(r.firstPaint.median)} (${fmt(r.firstPaint.min)}–${fmt(r.firstPaint.max)}, n=${r.firstPaint.n}) ms |`,
    `| matrix caption | ${r.caption.replace(/\|/g, '\\|').replace(/\n/g, ' ')} |`,
    '',
    `Goal: first paint < 1 s: ${yes(r.goals.firstPaint)}${r.goals.at10000 ? '' : ` (at ${r.apps.toLocaleString('en')} apps)`}.`,
  ].join('\n');
  const summary = [
    { measure: `dashboard first paint, ${r.apps.toLocaleString('en')} apps × ${r.envs} environment${r.envs === 1 ? '' : 's'}`, value: `${fmt(r.firstPaint.median)} ms`, goal: '< 1000 ms at 10,000 apps', met: r.goals.firstPaint && r.goals.at10000 ? true : r.goals.firstPaint ? null : false, peer: '', ratio: '' },
  ];
  return { markdown, summary };
}
