/**
 * `npm run bench`: runs every benchmark under bench/ in sequence, each in its own process, and writes BENCHMARKS.md:
 * a header (machine, load, date, revision, command, what ran, a summary of every goal) and one section per benchmark,
 * which the benchmark writes itself between `<!-- NAME:start -->` / `<!-- NAME:end -->` markers (lib.mjs
 * `writeSection`). A benchmark that is skipped or fails keeps the section it had.
 *
 *   npm run bench                                   # all (kubernetes only with KUBECONFIG set)
 *   npm run bench -- --skip kubernetes,dashboard    # all but these
 *   node bench/run.mjs --only chaos,scale           # just these (after `npm run build`)
 *   npm run bench -- --only kubernetes --apps 100   # Keelson, kubectl and Flux side by side at 100 apps
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { benchmarksFile, loadavg, readSections, revision, root, summaryRows, utc } from './lib.mjs';

/** Every benchmark, in run order: `needs` returns why it cannot run here, or nothing. */
const benches = [
  { name: 'commit-to-serving', title: 'Commit → new version serving' },
  { name: 'kill-to-ready', title: 'Replica killed → replacement ready' },
  { name: 'scale', title: 'Many apps' },
  { name: 'chaos', title: 'Chaos: a replica killed every 2 s' },
  { name: 'restart-under-load', title: 'Engine restarts and an upgrade under load' },
  { name: 'progressive-under-load', title: 'Progressive rollouts under load' },
  { name: 'crash-driver', title: 'Crash driver: SIGKILL of the engine at random moments' },
  { name: 'dashboard', title: 'Dashboard first paint' },
  { name: 'tls-overhead', title: 'HTTPS through the proxy' },
  {
    name: 'kubernetes',
    title: 'Kubernetes target',
    needs: () =>
      process.env.KUBECONFIG && existsSync(process.env.KUBECONFIG)
        ? undefined
        : 'KUBECONFIG is not set (start the test control plane: `scripts/testenv.sh start && eval "$(scripts/testenv.sh env)"`)',
  },
  { name: 'claims-failover', title: 'Failover between engines' },
  {
    name: 'sharded-cold-sync',
    title: 'Kubernetes: cold sync, 1 engine vs 3 sharded engines',
    needs: () =>
      process.env.KUBECONFIG && existsSync(process.env.KUBECONFIG)
        ? undefined
        : 'KUBECONFIG is not set (start the test control plane: `scripts/testenv.sh start && eval "$(scripts/testenv.sh env)"`)',
  },
  {
    name: 'helm',
    title: 'Kubernetes target: Helm charts',
    needs: () =>
      !process.env.KUBECONFIG || !existsSync(process.env.KUBECONFIG)
        ? 'KUBECONFIG is not set (start the test control plane: `scripts/testenv.sh start && eval "$(scripts/testenv.sh env)"`)'
        : !process.env.KEELSON_HELM_BIN
          ? 'KEELSON_HELM_BIN is not set (`scripts/tools.sh build helm && eval "$(scripts/tools.sh env)"`)'
          : undefined,
  },
];
const names = benches.map((b) => b.name);

const argv = process.argv.slice(2);
const list = (flag) => {
  const i = argv.indexOf(flag);
  if (i < 0) return undefined;
  const v = (argv[i + 1] ?? '').split(',').filter(Boolean);
  const unknown = v.filter((n) => !names.includes(n));
  if (!v.length || unknown.length) {
    console.error(`${flag}: unknown benchmark ${unknown.join(', ') || '(none given)'}; known: ${names.join(', ')}`);
    process.exit(2);
  }
  return v;
};
const only = list('--only');
const skip = list('--skip') ?? [];
// `--apps N`: the size of the Kubernetes benches (kubernetes, helm), handed to them as BENCH_APPS.
const appsAt = argv.indexOf('--apps');
if (appsAt >= 0) {
  const n = Number(argv[appsAt + 1]);
  if (!Number.isInteger(n) || n < 12) {
    console.error(`--apps: a whole number ≥ 12, not ${argv[appsAt + 1] ?? '(none given)'}`);
    process.exit(2);
  }
  process.env.BENCH_APPS = String(n);
}

const started = new Date();
const loadStart = os.loadavg();
// `npm run bench` built dist/ just before: the revision of now is the one measured, whatever is committed meanwhile.
process.env.KEELSON_BENCH_REVISION = revision();
const tmp = mkdtempSync(join(os.tmpdir(), 'keelson-bench-results-'));
/** name → { status: 'ok' | 'failed' | 'skipped' | 'not selected', seconds?, note? } */
const outcome = {};

let current;
let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    // The bench cleans up on the signal; this run stops after it.
    current?.kill(sig);
    interrupted = true;
  });
}

for (const b of benches) {
  if ((only && !only.includes(b.name)) || skip.includes(b.name)) {
    outcome[b.name] = { status: 'not selected' };
    continue;
  }
  const missing = b.needs?.();
  if (missing) {
    console.log(`\n== ${b.name}: skipped, ${missing}`);
    outcome[b.name] = { status: 'skipped', note: missing };
    continue;
  }
  if (interrupted) {
    outcome[b.name] = { status: 'skipped', note: 'the run was interrupted' };
    continue;
  }
  console.log(`\n== ${b.name}`);
  const out = join(tmp, `${b.name}.json`);
  const t = Date.now();
  const code = await new Promise((res) => {
    current = spawn(process.execPath, [join(root, 'bench', `${b.name}.mjs`), '--out', out], { stdio: 'inherit' });
    current.on('exit', (c, s) => res(c ?? (s ? 128 : 1)));
  });
  current = undefined;
  const seconds = (Date.now() - t) / 1000;
  // A bench that finished wrote its JSON and its section, even when a goal was missed (and it exits 1 for that).
  if (existsSync(out)) outcome[b.name] = { status: 'ok', seconds, note: code === 0 ? '' : `exited ${code}: a check failed, see its section` };
  else outcome[b.name] = { status: 'failed', seconds, note: `exited ${code} without a result; the section kept is from an earlier run` };
}
rmSync(tmp, { recursive: true, force: true });
const seconds = (Date.now() - started.getTime()) / 1000;
const failed = Object.entries(outcome).filter(([, o]) => o.status === 'failed').map(([n]) => n);
writeFileSync(benchmarksFile, assemble({ seconds, loadEnd: os.loadavg() }));
console.log(`\nbench finished in ${seconds.toFixed(0)} s${failed.length ? `; FAILED: ${failed.join(', ')}` : ''}; BENCHMARKS.md written`);
process.exit(failed.length || interrupted ? 1 : 0);

// ---- BENCHMARKS.md: title, header, then the sections in the order above (any other marked block after them).

function assemble({ seconds, loadEnd }) {
  const sections = readSections().filter((s) => s.name !== 'header');
  const byName = new Map(sections.map((s) => [s.name, s]));
  const ordered = [...names.filter((n) => byName.has(n)).map((n) => byName.get(n)), ...sections.filter((s) => !names.includes(s.name))];
  const header = headerBlock({ seconds, loadEnd, ordered });
  return ['# Benchmarks', '', header, ...ordered.map((s) => `\n<!-- ${s.name}:start -->\n${s.body}\n<!-- ${s.name}:end -->`), ''].join('\n');
}

function headerBlock({ seconds, loadEnd, ordered }) {
  const cpu = os.cpus();
  const cmd = `npm run bench${argv.length ? ` -- ${argv.join(' ')}` : ''}`;
  const measuredAt = (s) => /_Measured (\d{4}-\d\d-\d\d \d\d:\d\d UTC)/.exec(s.body)?.[1] ?? 'unknown';
  const p = [
    '<!-- header:start -->',
    'Generated by `npm run bench` (`bench/run.mjs`), which runs every benchmark under `bench/`; do not edit by hand, run',
    'it again. Each section below is written by its benchmark (`node bench/<name>.mjs` updates just its own section) and',
    'ends with when, on which revision, with which command and under which load it was measured. The benchmarks use real',
    'git, real `keelson up` processes, real replicas, real HTTP and, where named, real Chromium and a real Kubernetes',
    'control plane. Tests never assert times; these figures are for reading.',
    '',
    '## Machine and run',
    '',
    `- CPU: ${cpu[0]?.model?.trim() ?? 'unknown'}, ${cpu.length} cores; memory ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; ${os.type()} ${os.release()}`,
    `- Node ${process.version}; Keelson ${revision()}`,
    `- Last run: ${utc(started)}, \`${cmd}\`, ${seconds.toFixed(0)} s`,
    `- Load average (1/5/15 min) at the start ${loadavg(loadStart)}, at the end ${loadavg(loadEnd)}. The machine is shared: a`,
    `  load above the core count (${cpu.length}) means other work had the CPUs too, and the times are inflated by it. A bench's`,
    `  own replicas count as well (\`scale\` starts up to 400 processes, so the load after it says little about others).`,
    '',
    '| Benchmark | In the last run | Section measured |',
    '|---|---|---|',
    ...benches.map((b) => {
      const o = outcome[b.name];
      const s = ordered.find((x) => x.name === b.name);
      const state = o.status === 'ok' ? `ran, ${o.seconds.toFixed(0)} s${o.note ? `; ${o.note}` : ''}` : o.status === 'failed' ? `**failed** (${o.note})` : o.status === 'skipped' ? `skipped: ${o.note}` : 'not selected';
      const title = s ? `[${b.title}](#${anchor(s)})` : b.title;
      return `| ${title} (\`${b.name}\`) | ${state} | ${s ? measuredAt(s) : 'no section yet'} |`;
    }),
    '',
    '## Summary',
    '',
    'Medians unless the row says otherwise. Goals are the issues\' targets; ratios are peer ÷ Keelson (above 1× means Keelson',
    'is faster). Details, method and min/max/n in the sections.',
    '',
    '| Measure | Keelson | Goal | Met | Peer | Ratio |',
    '|---|---|---|---|---|---|',
    ...summaryRows(ordered),
    '',
    '## Reproduce',
    '',
    '```sh',
    'npm run bench                                  # build, then every benchmark; writes BENCHMARKS.md',
    'npm run bench -- --skip kubernetes,dashboard   # all but these; --only a,b runs just these',
    'npm run build && node bench/chaos.mjs          # one benchmark alone: updates its own section',
    'node bench/scale.mjs --no-write                # prints only',
    '# the kubernetes section needs the test control plane:',
    'KEELSON_TESTENV_DIR=/tmp/bench-k8s scripts/testenv.sh start && eval "$(KEELSON_TESTENV_DIR=/tmp/bench-k8s scripts/testenv.sh env)"',
    'npm run bench -- --only kubernetes; KEELSON_TESTENV_DIR=/tmp/bench-k8s scripts/testenv.sh stop',
    '# … with Flux beside Keelson and kubectl (built once from Go modules by bench/peers/flux.sh), at 100/500/1000 apps:',
    'npm run bench -- --only kubernetes --apps 100',
    '```',
    '',
    'Knobs (environment): `BENCH_RUNS` (runs per figure, default 7), `BENCH_SIZES` (scale, default `100,200,400`),',
    '`BENCH_HEADLINE` (scale: the size with repeated cold starts, default 200), `BENCH_COLD_RUNS` (default 5),',
    '`BENCH_CHAOS_SECONDS` (default 60), `BENCH_DASHBOARD_APPS` / `BENCH_DASHBOARD_ENVS` (default 10000 × 2),',
    '`BENCH_APPS` (or `--apps`) / `BENCH_NAMESPACES` / `BENCH_DRIFT_TRIALS` / `BENCH_FLUX_CONCURRENT` (kubernetes),',
    '`KEELSON_KEEP_TMP=1` keeps temp repositories,',
    'state dirs and logs. Every engine a benchmark starts is stopped and `keelson down` run on its state dir; peers (pm2,',
    'the deploy script\'s process, Chromium) are stopped, also when a benchmark fails or is interrupted.',
    '<!-- header:end -->',
  ];
  return p.join('\n');
}

/** GitHub's anchor of a section's `## ` heading. */
function anchor(s) {
  const h = s && /^## (.+)$/m.exec(s.body)?.[1];
  if (!h) return '';
  return h
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .trim()
    .replace(/\s/g, '-');
}
