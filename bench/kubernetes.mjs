/**
 * The Kubernetes target at scale, on the test control plane (scripts/testenv.sh: real kube-apiserver, etcd,
 * controller-manager, scheduler, kwok nodes): N apps of 4 objects each (Deployment with 1 replica, headless
 * Service, ConfigMap, ServiceAccount) in 10 namespaces (one Keelson environment per namespace).
 *
 *   cold sync     `keelson up` on a fresh state dir until every Deployment is Available
 *   no-op resync  a manual sync of every environment; write requests counted by kube-apiserver (must be 0)
 *   1-app change  a commit bumping one app's version → webhook → that environment's sync completed (healthy)
 *   RSS           of the `keelson up` process
 *   kubectl       `kubectl apply --server-side` of the same manifests (own namespaces), cold and no-op, and cold
 *                 as one kubectl process per namespace, all at once (the fastest a script can use it)
 *   CPU           seconds per process (control plane, kubectl, Keelson) over each cold phase, from /proc
 *   drift         `kubectl scale` of a managed Deployment → reverted by Keelson, ≥ 10 trials
 *   Flux          source-controller + kustomize-controller (bench/peers/flux.sh builds them; bench/flux.mjs runs them
 *                 on loopback): the same apps as one Kustomization each (from one GitRepository of the same ops
 *                 repository over smart HTTP, prune + wait), through the same phases: cold, no-op (a reconcile of
 *                 every Kustomization requested by annotation, as `flux reconcile` does), 1-app change (commit →
 *                 reconcile of the GitRepository requested → that app applied and Ready), drift, memory, CPU
 *
 * Write requests come from the API server's own `apiserver_request_total` (verbs POST, PUT, PATCH, APPLY,
 * DELETE; dry-runs apart) for the kinds the apps are made of, before/after each phase.
 *
 *   scripts/testenv.sh start && eval "$(scripts/testenv.sh env)" && npm run build && node bench/kubernetes.mjs
 *   node bench/kubernetes.mjs --apps 100 --no-write          # smaller (or BENCH_APPS=100), leaves BENCHMARKS.md alone
 *   node bench/kubernetes.mjs --apps 100 --flux-only --no-write   # Flux's phases alone (while working on them)
 *   node bench/kubernetes.mjs --no-flux                      # Keelson and kubectl only (minutes, not the half hour Flux takes at 1,000 apps)
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { benchCommand, benchmarksFile, commitAll, fmt, fmtStats, freePort, git, gitInit, kubectl, main, needControlPlane, now, onCleanup, root, rssKiB, sleep, startKeelson, stats, tempDir, waitFor, writeSection as writeBenchSection, writeTree } from './lib.mjs';
import { fluxRequests, fluxTools, fluxWatch, requestsBetween, gitRepository, installCrds, KUSTOMIZE_API, kustomization, pool, readyOf, REQUESTED_AT, SOURCE_API, startFlux } from './flux.mjs';
import { serveGit } from './git-http.mjs';
import { liveWatch } from './live-watch.mjs';
import { connect } from '../dist/targets/kubernetes/client.js';

const argValue = (flag) => {
  const i = process.argv.indexOf(flag);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const APPS = Number(argValue('--apps') ?? process.env.BENCH_APPS ?? 1000);
if (!Number.isInteger(APPS) || APPS < 12) {
  console.error(`--apps (or BENCH_APPS) must be a whole number ≥ 12, not ${argValue('--apps') ?? process.env.BENCH_APPS}`);
  process.exit(2);
}
const NAMESPACES = Number(process.env.BENCH_NAMESPACES ?? 10);
const DRIFT_TRIALS = Number(process.env.BENCH_DRIFT_TRIALS ?? 12);
const NOOP_RUNS = Number(process.env.BENCH_NOOP_RUNS ?? 5);
const COLD_TIMEOUT_MS = Number(process.env.BENCH_COLD_TIMEOUT_S ?? 1500) * 1000;
/** `--keelson-only`: skip kubectl (for profiling Keelson: NODE_OPTIONS reaches the `keelson up` child). */
const keelsonOnly = process.argv.includes('--keelson-only');
/** `--flux-only`: Flux's phases alone (no kubectl, no Keelson; nothing written). */
const fluxOnly = process.argv.includes('--flux-only');
/** `--no-flux`: Keelson and kubectl only (nothing written: the section compares all three). */
const noFlux = process.argv.includes('--no-flux');
const writeReport = !keelsonOnly && !fluxOnly && !noFlux && !process.argv.includes('--no-write');
/** kustomize-controller's parallel reconciles: 20, as in Flux's own benchmark (fluxcd/flux-benchmark; the default is 4). */
const FLUX_CONCURRENT = Number(process.env.BENCH_FLUX_CONCURRENT ?? 20);
/** Each no-op of Flux takes about as long as its cold sync: 3 runs up to 100 apps, 1 above. */
const FLUX_NOOP_RUNS = Number(process.env.BENCH_FLUX_NOOP_RUNS ?? (APPS > 100 ? 1 : 3));
const FLUX_DRIFT_TRIALS = Number(process.env.BENCH_FLUX_DRIFT_TRIALS ?? 3);
/** How long a Flux drift trial waits for a revert that, with no drift detection between reconciles, does not come. */
const FLUX_DRIFT_WAIT_MS = Number(process.env.BENCH_FLUX_DRIFT_WAIT_S ?? 10) * 1000;
/** After the drift trials, how much longer to wait for every Kustomization to reach the changed revision. */
const FLUX_ALL_WAIT_MS = Number(process.env.BENCH_FLUX_ALL_WAIT_S ?? 120) * 1000;
const RESOURCES = new Set(['deployments', 'services', 'configmaps', 'serviceaccounts', 'namespaces']);
const WRITE_VERBS = new Set(['POST', 'PUT', 'PATCH', 'APPLY', 'DELETE']);
const RUN = `${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
const RUN_LABEL = 'bench.keelson.dev/run';

const execFileP = promisify(execFile);
needControlPlane('bench/kubernetes.mjs');

const appName = (i) => `app-${String(i).padStart(4, '0')}`;
const nsOf = (i) => Math.floor((i * NAMESPACES) / APPS);
const keelsonNs = (j) => `kb-${RUN}-k${j}`;
const kubectlNs = (j) => `kb-${RUN}-c${j}`;
const parallelNs = (j) => `kb-${RUN}-p${j}`;
const fluxNs = (j) => `kb-${RUN}-f${j}`;
/** Flux's own namespace (RUNTIME_NAMESPACE; the GitRepository and the Kustomizations live there). */
const fluxSystemNs = `kb-${RUN}-fsys`;
const envName = (j) => `ns${j}`;

/** The 4 objects of one app; `namespace` only for the kubectl copy (Keelson fills in its environment's). */
function manifests(i, version, namespace) {
  const name = appName(i);
  const ns = namespace ? `, namespace: ${namespace}` : '';
  const labels = `{ app: ${name}, ${RUN_LABEL}: "${RUN}" }`;
  return `apiVersion: v1
kind: ServiceAccount
metadata: { name: ${name}${ns} }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: ${name}${ns} }
data: { GREETING: "hello from ${name}", LOG_LEVEL: info }
---
apiVersion: v1
kind: Service
metadata: { name: ${name}${ns} }
spec:
  clusterIP: None
  selector: { app: ${name} }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: ${name}${ns}, labels: ${labels} }
spec:
  replicas: 1
  selector: { matchLabels: { app: ${name} } }
  template:
    metadata: { labels: { app: ${name} } }
    spec:
      serviceAccountName: ${name}
      containers:
      - name: web
        image: registry.example/bench/web:${version}
        envFrom: [{ configMapRef: { name: ${name} } }]
        ports: [{ name: http, containerPort: 8080 }]
`;
}

function appFile(i, version) {
  return `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: ${appName(i)} }
spec:
  version: "${version}"
  image: registry.example/bench/web
  manifests: ../manifests/${appName(i)}
`;
}

function opsRepository(dir) {
  const files = {};
  const envApps = Array.from({ length: NAMESPACES }, () => []);
  for (let i = 0; i < APPS; i++) {
    files[`apps/${appName(i)}.yaml`] = appFile(i, '1.0.0');
    files[`manifests/${appName(i)}/app.yaml`] = manifests(i, '1.0.0');
    envApps[nsOf(i)].push(appName(i));
  }
  for (let j = 0; j < NAMESPACES; j++) {
    files[`environments/${envName(j)}.yaml`] = `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata: { name: ${envName(j)} }
spec:
  target:
    kubernetes: { namespace: ${keelsonNs(j)} }
  apps:
${envApps[j].map((a) => `    ${a}: {}\n`).join('')}`;
  }
  writeTree(dir, files);
  gitInit(dir);
  commitAll(dir, `${APPS} apps in ${NAMESPACES} namespaces`);
}

/** The same objects for kubectl: explicit namespaces (created first), one file per app. */
function kubectlTree(dir) {
  const files = { '00-namespaces.yaml': Array.from({ length: NAMESPACES }, (_, j) => `apiVersion: v1\nkind: Namespace\nmetadata: { name: ${kubectlNs(j)} }\n`).join('---\n') };
  for (let i = 0; i < APPS; i++) files[`apps/${appName(i)}.yaml`] = manifests(i, '1.0.0', kubectlNs(nsOf(i)));
  writeTree(dir, files);
}

/** The same manifests, one directory per namespace, for one kubectl process per namespace. */
function parallelTree(dir) {
  const files = {};
  for (let j = 0; j < NAMESPACES; j++) files[`ns${j}/00-namespace.yaml`] = `apiVersion: v1\nkind: Namespace\nmetadata: { name: ${parallelNs(j)} }\n`;
  for (let i = 0; i < APPS; i++) files[`ns${nsOf(i)}/apps/${appName(i)}.yaml`] = manifests(i, '1.0.0', parallelNs(nsOf(i)));
  writeTree(dir, files);
}

// ---- the API server's request counters

function requestCounters() {
  const out = [];
  for (const line of kubectl('get', '--raw', '/metrics').split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const close = line.lastIndexOf('}');
    const labels = Object.fromEntries([...line.slice(24, close).matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    out.push({ key: line.slice(0, close + 1), labels, value: Number(line.slice(close + 1)) });
  }
  return out;
}

/** Write requests between two snapshots for the apps' kinds: total, dry-runs and a breakdown by verb/resource. */
function writesBetween(before, after) {
  const prev = new Map(before.map((c) => [c.key, c.value]));
  let total = 0;
  let dryRuns = 0;
  const by = {};
  for (const c of after) {
    const { verb, resource, subresource, dry_run: dry } = c.labels;
    if (!WRITE_VERBS.has(verb) || !RESOURCES.has(resource) || subresource) continue;
    const d = c.value - (prev.get(c.key) ?? 0);
    if (d <= 0) continue;
    if (dry) dryRuns += d;
    else total += d;
    const k = `${verb}${dry ? ' dry-run' : ''} ${resource}`;
    by[k] = (by[k] ?? 0) + d;
  }
  return { total, dryRuns, by };
}
const fmtRequests = (q) => (!q ? 'not measured' : `${q.total} requests from the controllers (${Object.entries(q.by).map(([k, v]) => `${k} ${v}`).join(', ')})`);
const fmtWrites = (w) => !w ? 'not measured' : `${w.total} writes${w.dryRuns ? ` + ${w.dryRuns} dry-runs` : ''}${Object.keys(w.by).length ? ` (${Object.entries(w.by).map(([k, v]) => `${k}: ${v}`).join(', ')})` : ''}`;

// ---- Deployments as the API server reports them, by watch

function deploymentWatch() {
  // Keelson's own REST client (dist/), watching as any informer does: list, then watch from the list's version.
  const { api } = connect({});
  onCleanup(() => api.close());
  return liveWatch(api, '/apis/apps/v1/deployments', {
    selector: `${RUN_LABEL}=${RUN}`,
    project: (d) => ({
      available: (d.status?.conditions ?? []).some((c) => c.type === 'Available' && c.status === 'True'),
      rolledOut: (d.status?.observedGeneration ?? 0) >= (d.metadata.generation ?? 0) && (d.status?.updatedReplicas ?? 0) === d.spec.replicas && (d.status?.availableReplicas ?? 0) === d.spec.replicas && (d.status?.replicas ?? 0) === d.spec.replicas,
      replicas: d.spec.replicas,
      image: d.spec.template.spec.containers[0].image,
    }),
    onCleanup,
  });
}

const availableIn = (prefix, n) => (state) => {
  let ok = 0;
  for (const [k, v] of state) if (k.startsWith(prefix) && v.available) ok++;
  return ok >= n;
};

// ---- memory: what the engine's RSS is made of (its own Prometheus metrics)

async function memoryOf(k) {
  const metrics = await k.text('/metrics');
  const value = (name) => Number(new RegExp(`^keelson_${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(metrics)?.[1] ?? NaN) / 2 ** 20;
  const m = { rss: value('process_resident_memory_bytes'), heapTotal: value('nodejs_heap_size_total_bytes'), heapUsed: value('nodejs_heap_size_used_bytes'), external: value('nodejs_external_memory_bytes') };
  m.text = `RSS ${fmt(m.rss)} MiB = V8 heap ${fmt(m.heapTotal)} MiB (${fmt(m.heapUsed)} MiB in use) + external ${fmt(m.external)} MiB + the rest (code, native, allocator) ${fmt(m.rss - m.heapTotal - m.external)} MiB`;
  return m;
}

// ---- CPU: who used the two cores during a phase

/** CPU seconds (user + system) a process used so far; `children` adds what its reaped children used (kubectl). */
function cpuOf(pid, children = false) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').slice(readFileSync(`/proc/${pid}/stat`, 'utf8').lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]) + (children ? Number(f[13]) + Number(f[14]) : 0);
    return ticks / 100;
  } catch {
    return 0;
  }
}

/**
 * CPU seconds so far of each control plane process (from the test environment's pid files), Keelson (a pid) or other
 * named processes (`{ name: pid }`), and the bench's reaped children (`childrenLabel`: kubectl, or the git
 * http-backend processes that serve Flux).
 */
function cpuSnapshot(keelsonPid, childrenLabel = 'kubectl (the bench\'s children)') {
  const pids = join(dirname(process.env.KUBECONFIG ?? ''), 'pids');
  const out = {};
  if (existsSync(pids)) {
    for (const f of readdirSync(pids)) out[f.replace(/\.pid$/, '')] = cpuOf(readFileSync(join(pids, f), 'utf8').split(' ')[0].trim());
  }
  out[childrenLabel] = cpuOf(process.pid, true) - cpuOf(process.pid);
  if (typeof keelsonPid === 'number') out.keelson = cpuOf(keelsonPid);
  else for (const [name, pid] of Object.entries(keelsonPid ?? {})) out[name] = cpuOf(pid);
  return out;
}

/** `name 12.3 s` per process for the CPU used between two snapshots, largest first, with the phase's wall time. */
function cpuBetween(a, b, wallMs) {
  const used = Object.entries(b).map(([k, v]) => [k, v - (a[k] ?? 0)]).filter(([, v]) => v > 0.05).sort((x, y) => y[1] - x[1]);
  const total = used.reduce((n, [, v]) => n + v, 0);
  return { total, wallMs, parts: used, text: `${used.map(([k, v]) => `${k} ${fmt(v, 1)} s`).join(', ')} (total ${fmt(total, 1)} CPU-s in ${fmt(wallMs / 1000, 1)} s: ${fmt(total / (wallMs / 1000), 2)} of ${os.cpus().length} cores)` };
}

// ---- phases

async function timedKubectlApply(dir) {
  const t0 = now();
  await execFileP('kubectl', ['apply', '--server-side', '--field-manager=bench', '-R', '-f', dir], { maxBuffer: 256 * 1024 * 1024 });
  return now() - t0;
}

async function kubectlCold(dir, watch) {
  const before = requestCounters();
  const cpu0 = cpuSnapshot();
  const t0 = now();
  const applyMs = await timedKubectlApply(dir);
  const availableAt = await watch.until(`${APPS} kubectl Deployments Available`, availableIn(`kb-${RUN}-c`, APPS), COLD_TIMEOUT_MS);
  const cpu = cpuBetween(cpu0, cpuSnapshot(), availableAt - t0);
  const writes = writesBetween(before, requestCounters());
  return { applyMs, availableMs: availableAt - t0, writes, cpu };
}

/** Deletes namespaces and waits until they and everything in them are gone (the namespace controller's work). */
async function deleteNamespaces(names) {
  execFileSync('kubectl', ['delete', 'namespace', '--wait=false', '--ignore-not-found', ...names], { stdio: 'ignore' });
  const left = () => kubectl('get', 'namespaces', '-o', 'name').split('\n').filter((n) => names.includes(n.replace('namespace/', '')));
  await waitFor(`namespaces ${names[0]}… deleted`, () => left().length === 0, { timeoutMs: 900_000, intervalMs: 1000 });
}

/** kubectl as a script would run it at its fastest: one process per namespace, all at once. */
async function kubectlParallelCold(dir, watch) {
  const cpu0 = cpuSnapshot();
  const t0 = now();
  await Promise.all(Array.from({ length: NAMESPACES }, (_, j) => timedKubectlApply(join(dir, `ns${j}`))));
  const applyMs = now() - t0;
  const availableAt = await watch.until(`${APPS} kubectl (parallel) Deployments Available`, availableIn(`kb-${RUN}-p`, APPS), COLD_TIMEOUT_MS);
  return { applyMs, availableMs: availableAt - t0, cpu: cpuBetween(cpu0, cpuSnapshot(), availableAt - t0) };
}

async function kubectlNoop(dir) {
  const times = [];
  let writes;
  for (let r = 0; r < NOOP_RUNS; r++) {
    const before = requestCounters();
    times.push(await timedKubectlApply(dir));
    writes ??= writesBetween(before, requestCounters());
  }
  return { time: stats(times), writes };
}

async function keelsonCold(dir, ops, watch) {
  const apiPort = await freePort();
  const before = requestCounters();
  const cpu0 = cpuSnapshot();
  const t0 = now();
  const k = startKeelson({ repo: ops, stateDir: join(dir, 'state'), apiPort, poll: '30s', logFile: join(dir, 'keelson.log') });
  cpu0.keelson = 0;
  let peakRss = 0;
  const sampler = setInterval(() => {
    try {
      peakRss = Math.max(peakRss, rssKiB(k.pid));
    } catch {}
  }, 200);
  onCleanup(() => clearInterval(sampler));
  const availableAt = await watch.until(`${APPS} Keelson Deployments Available`, availableIn(`kb-${RUN}-k`, APPS), COLD_TIMEOUT_MS);
  const cpu = cpuBetween(cpu0, cpuSnapshot(k.pid), availableAt - t0);
  // Keelson's own view: every environment synced and every app Healthy.
  await waitFor('every app Healthy and Synced', async () => {
    const envs = (await k.get('/api/v1/status')).environments;
    const apps = envs.flatMap((e) => e.apps);
    return apps.length === APPS && apps.every((a) => a.health === 'Healthy' && a.sync === 'Synced');
  }, { timeoutMs: COLD_TIMEOUT_MS, intervalMs: 500 });
  const syncedAt = now();
  const writes = writesBetween(before, requestCounters());
  const syncs = (await k.get('/api/v1/history?limit=1000')).syncs;
  const failedSyncs = syncs.filter((s) => s.result === 'Failed');
  clearInterval(sampler);
  return { k, availableMs: availableAt - t0, syncedMs: syncedAt - t0, writes, peakRssMiB: peakRss / 1024, failedSyncs: failedSyncs.length, cpu };
}

async function keelsonNoop(k) {
  const times = [];
  let writes;
  for (let r = 0; r < NOOP_RUNS; r++) {
    const before = requestCounters();
    const t0 = now();
    // A kept-alive connection the engine's server closed as idle just as it was reused fails the POST before it is
    // sent ("fetch failed"): sent again once.
    const sync = (j) => k.post(`/api/v1/environments/${envName(j)}/sync`).catch((err) => (err instanceof TypeError ? k.post(`/api/v1/environments/${envName(j)}/sync`) : Promise.reject(err)));
    const results = await Promise.all(Array.from({ length: NAMESPACES }, (_, j) => sync(j)));
    times.push(now() - t0);
    const changed = results.filter((x) => x.result !== 'Unchanged');
    if (changed.length) throw new Error(`a no-op sync changed something: ${JSON.stringify(changed)}`);
    const w = writesBetween(before, requestCounters());
    if (!writes || w.total + w.dryRuns > writes.total + writes.dryRuns) writes = w;
  }
  return { time: stats(times), writes };
}

async function oneAppChange(k, ops, watch) {
  const i = Math.floor(APPS / 2) + 1;
  const j = nsOf(i);
  const key = `${keelsonNs(j)}/${appName(i)}`;
  writeTree(ops, { [`apps/${appName(i)}.yaml`]: appFile(i, '1.0.1') });
  commitAll(ops, `${appName(i)} 1.0.1`);
  const before = requestCounters();
  const lastSync = (await k.get(`/api/v1/history?env=${envName(j)}&limit=1`)).syncs[0];
  const t0 = now();
  await k.post('/api/v1/webhooks/git', { ref: 'refs/heads/main' });
  const sync = await waitFor('the changed environment synced', async () => {
    const s = (await k.get(`/api/v1/history?env=${envName(j)}&limit=1`)).syncs[0];
    return s && s.startedAt !== lastSync?.startedAt && s;
  }, { timeoutMs: 60_000, intervalMs: 10 });
  const doneAt = Date.parse(sync.startedAt) + sync.durationMs;
  const rolledOutAt = await watch.until(`${key} rolled out`, (s) => s.get(key)?.image.endsWith(':1.0.1') && s.get(key)?.rolledOut, 60_000);
  await sleep(1000); // the controllers' writes of this rollout are not Keelson's; let them land before counting
  const writes = writesBetween(before, requestCounters());
  return { app: key, result: sync.result, summary: sync.summary, totalMs: doneAt - t0, syncMs: sync.durationMs, toSyncStartMs: Date.parse(sync.startedAt) - t0, rolledOutMs: rolledOutAt - t0, writes };
}

async function drift(watch) {
  const samples = [];
  const fromCommand = [];
  for (let t = 0; t < DRIFT_TRIALS; t++) {
    // A different Deployment each trial: repeated fights on one object back off (self-heal), on purpose.
    // (app t lives in namespace nsOf(t): with 100 apps the first namespace holds only 10)
    const key = `${keelsonNs(nsOf(t))}/${appName(t)}`;
    let scaledAt;
    let revertedAt;
    const off = watch.onEvent((d, at) => {
      if (`${d.metadata.namespace}/${d.metadata.name}` !== key) return;
      if (d.spec.replicas === 3 && scaledAt === undefined) scaledAt = at;
      if (d.spec.replicas === 1 && scaledAt !== undefined && revertedAt === undefined) revertedAt = at;
    });
    const t0 = now();
    kubectl('-n', keelsonNs(nsOf(t)), 'scale', `deployment/${appName(t)}`, '--replicas=3');
    await waitFor(`${key} reverted to 1 replica`, () => revertedAt !== undefined, { timeoutMs: 30_000, intervalMs: 5 });
    off();
    samples.push(revertedAt - scaledAt);
    fromCommand.push(revertedAt - t0);
    await sleep(300);
  }
  return { revert: stats(samples), fromCommand: stats(fromCommand) };
}

// ---- Flux: source-controller + kustomize-controller, one Kustomization per app

const ksPath = `/apis/${KUSTOMIZE_API}/namespaces/${fluxSystemNs}/kustomizations`;
const gitRepoPath = `/apis/${SOURCE_API}/namespaces/${fluxSystemNs}/gitrepositories`;
const FLUX_SOURCE = 'ops';
const mergePatch = (api, path, body) => api.request('PATCH', path, { body, contentType: 'application/merge-patch+json' });
/** What `flux reconcile` does: a new value of the requestedAt annotation, which the controller reconciles and records. */
const requestReconcile = (api, path, token) => mergePatch(api, path, { metadata: { annotations: { [REQUESTED_AT]: token } } });
const handled = (o, token) => o?.status?.lastHandledReconcileAt === token && readyOf(o)?.ok && o.status?.observedGeneration === o.metadata.generation;
const appliedAt = (o, sha) => (o?.status?.lastAppliedRevision ?? '').endsWith(sha) && readyOf(o)?.ok;

/**
 * Flux's objects gone without Flux: with the controllers stopped, the finalizers they would have run (garbage
 * collection of what a Kustomization applied) are dropped, then the namespaces deleted (and waited for with `wait`).
 */
async function removeFlux(api, namespaces, wait) {
  execFileSync('kubectl', ['delete', 'namespace', '--wait=false', '--ignore-not-found', ...namespaces], { stdio: 'ignore' });
  for (const path of [ksPath, gitRepoPath]) {
    const items = await api.listPath(path).then((l) => l.items, () => []);
    await pool(items.filter((o) => o.metadata.finalizers?.length), 32, (o) => mergePatch(api, `${path}/${o.metadata.name}`, { metadata: { finalizers: null } }).catch(() => {}));
  }
  if (wait) await deleteNamespaces(namespaces);
}

/** Leftovers of an interrupted earlier run (Flux objects whose finalizers nobody runs any more): released. */
function releaseFluxLeftovers() {
  for (const kind of ['kustomizations.kustomize.toolkit.fluxcd.io', 'gitrepositories.source.toolkit.fluxcd.io']) {
    let lines = [];
    try {
      lines = kubectl('get', kind, '-A', '-o', 'jsonpath={range .items[*]}{.metadata.namespace}{" "}{.metadata.name}{" "}{.metadata.deletionTimestamp}{"\\n"}{end}').split('\n');
    } catch {
      return; // no CRDs yet: nothing left over
    }
    for (const line of lines) {
      const [ns, name, deleting] = line.split(' ');
      if (ns?.startsWith('kb-') && deleting) execFileSync('kubectl', ['-n', ns, 'patch', kind, name, '--type=merge', '-p', '{"metadata":{"finalizers":null}}'], { stdio: 'ignore' });
    }
  }
}

async function fluxPhases(dir, ops, watch) {
  const tools = fluxTools();
  await installCrds(tools);
  const { api } = connect({});
  onCleanup(() => api.close());
  const namespaces = Array.from({ length: NAMESPACES }, (_, j) => fluxNs(j));
  // Registered before the controllers start, so it runs after they stop (cleanups run last first).
  let removed = false;
  onCleanup(async () => {
    if (!removed) await removeFlux(api, [fluxSystemNs, ...namespaces], false);
  });
  // Flux installed and idle, as in a cluster that runs it: its namespace, its controllers, the git server.
  kubectl('create', 'namespace', fluxSystemNs);
  const gitServer = await serveGit(dirname(ops));
  onCleanup(() => gitServer.close());
  const flux = await startFlux(tools, { dir: join(dir, 'flux'), namespace: fluxSystemNs, concurrent: FLUX_CONCURRENT });
  const ks = fluxWatch(api, ksPath, onCleanup);
  const repo = fluxWatch(api, gitRepoPath, onCleanup);
  await Promise.all([ks.started, repo.started]);
  const names = Array.from({ length: APPS }, (_, i) => appName(i));
  const rss = () => Object.fromEntries(Object.entries(flux.pids).map(([n, pid]) => [n, rssKiB(pid) / 1024]));
  const peak = { total: 0, byProcess: {} };
  let coldPeak;
  const sampler = setInterval(() => {
    try {
      const r = rss();
      const total = Object.values(r).reduce((a, b) => a + b, 0);
      if (total > peak.total) Object.assign(peak, { total, byProcess: r });
    } catch {}
  }, 200);
  onCleanup(() => clearInterval(sampler));

  // cold: the namespaces, the GitRepository and one Kustomization per app created → every Deployment Available
  const before = requestCounters();
  const q0 = await fluxRequests(flux);
  const cpu0 = cpuSnapshot(flux.pids, 'git http-backend (the bench\'s children)');
  const t0 = now();
  await pool(namespaces, 10, (name) => api.request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name } } }));
  await api.create(gitRepository(FLUX_SOURCE, fluxSystemNs, gitServer.url('ops')), 'keelson-bench');
  // The source first: a Kustomization created before its source has an artifact waits --requeue-dependency (30 s).
  const sourceAt = await repo.until('the GitRepository has an artifact', (s) => readyOf(s.get(FLUX_SOURCE))?.ok && s.get(FLUX_SOURCE)?.status?.artifact, 120_000);
  await pool(names, 32, (name, i) => api.create(kustomization({ name, namespace: fluxSystemNs, source: FLUX_SOURCE, path: `./manifests/${name}`, targetNamespace: fluxNs(nsOf(i)) }), 'keelson-bench'));
  const createdMs = now() - t0;
  const availableAt = await watch.until(`${APPS} Flux Deployments Available`, availableIn(`kb-${RUN}-f`, APPS), COLD_TIMEOUT_MS);
  const cpu = cpuBetween(cpu0, cpuSnapshot(flux.pids, 'git http-backend (the bench\'s children)'), availableAt - t0);
  const readyAt = await ks.until(`${APPS} Kustomizations Ready`, (s) => names.every((n) => readyOf(s.get(n))?.ok), COLD_TIMEOUT_MS);
  const writes = writesBetween(before, requestCounters());
  const requests = requestsBetween(q0, await fluxRequests(flux));
  coldPeak = { ...peak, byProcess: { ...peak.byProcess } };
  const cold = { sourceMs: sourceAt - t0, createdMs, availableMs: availableAt - t0, readyMs: readyAt - t0, writes, requests, cpu, peakRssMiB: coldPeak.total, peakByProcess: coldPeak.byProcess };
  console.log(`flux cold: source ready ${fmt(cold.sourceMs / 1000, 1)} s, ${APPS} Kustomizations created by ${fmt(createdMs / 1000, 1)} s, every Deployment Available ${fmt(cold.availableMs / 1000, 1)} s, every Kustomization Ready ${fmt(cold.readyMs / 1000, 1)} s; ${fmtWrites(writes)}; ${fmtRequests(requests)}; peak RSS ${fmt(coldPeak.total)} MiB (${Object.entries(coldPeak.byProcess).map(([n, v]) => `${n} ${fmt(v)}`).join(', ')})`);
  console.log(`  CPU: ${cpu.text}`);
  await sleep(2000);
  const settled = rss();

  // no-op: a reconcile of every Kustomization requested → every one handled it (Ready), nothing changed
  const times = [];
  let noopWrites;
  let noopRequests;
  for (let r = 0; r < FLUX_NOOP_RUNS; r++) {
    const token = `noop-${r}-${Date.now()}`;
    const b = requestCounters();
    const q = await fluxRequests(flux);
    const t = now();
    await pool(names, 32, (name) => requestReconcile(api, `${ksPath}/${name}`, token));
    const at = await ks.until(`${APPS} Kustomizations reconciled (${token})`, (s) => names.every((n) => handled(s.get(n), token)), COLD_TIMEOUT_MS);
    times.push(at - t);
    const w = writesBetween(b, requestCounters());
    if (!noopWrites || w.total + w.dryRuns > noopWrites.total + noopWrites.dryRuns) noopWrites = w;
    noopRequests ??= requestsBetween(q, await fluxRequests(flux));
  }
  const noop = { time: stats(times), writes: noopWrites, requests: noopRequests };
  if (FLUX_NOOP_RUNS > 0) console.log(`flux no-op resync (reconcile of ${APPS} Kustomizations requested): ${fmtStats(noop.time)}; ${fmtWrites(noop.writes)}; ${fmtRequests(noop.requests)}`);
  else console.log('flux no-op resync: not measured (BENCH_FLUX_NOOP_RUNS=0)');

  // 1-app change: the app's manifests committed at 1.0.1 → reconcile of the GitRepository requested → that app's
  // Kustomization applied at the new revision and Ready (wait: its Deployment rolled out)
  const i = Math.floor(APPS / 2) + 1;
  const key = `${fluxNs(nsOf(i))}/${appName(i)}`;
  writeTree(ops, { [`manifests/${appName(i)}/app.yaml`]: manifests(i, '1.0.1') });
  commitAll(ops, `${appName(i)} 1.0.1 (manifests)`);
  const sha = git(ops, 'rev-parse', 'HEAD');
  const cb = requestCounters();
  const cq = await fluxRequests(flux);
  const ct = now();
  await requestReconcile(api, `${gitRepoPath}/${FLUX_SOURCE}`, `change-${Date.now()}`);
  const fetchedAt = await repo.until('the GitRepository at the new commit', (s) => (s.get(FLUX_SOURCE)?.status?.artifact?.revision ?? '').endsWith(sha), 120_000);
  const changeAt = await ks.until(`${appName(i)} applied at ${sha.slice(0, 7)} and Ready`, (s) => appliedAt(s.get(appName(i)), sha), COLD_TIMEOUT_MS);
  const rolledOutAt = await watch.until(`${key} rolled out`, (s) => s.get(key)?.image.endsWith(':1.0.1') && s.get(key)?.rolledOut, 120_000);
  // A new revision of the source makes kustomize-controller reconcile every Kustomization of it: how long until all
  // are at the new revision is recorded while the drift trials run (waited for up to FLUX_ALL_WAIT_MS after them).
  let allAt;
  const allDone = ks.until(`${APPS} Kustomizations at ${sha.slice(0, 7)}`, (s) => names.every((n) => appliedAt(s.get(n), sha)), COLD_TIMEOUT_MS).then((t) => (allAt = t), () => {});
  const change = { app: key, totalMs: changeAt - ct, fetchMs: fetchedAt - ct, rolledOutMs: rolledOutAt - ct };
  console.log(`flux 1-app change (${key}): reconcile requested → source at the new commit ${fmt(change.fetchMs)} ms, that Kustomization applied and Ready ${fmt(change.totalMs)} ms (pod rolled out at ${fmt(change.rolledOutMs)} ms)`);

  // drift: kustomize-controller corrects drift when it reconciles (interval, here 1 h), not when it happens
  const drift = { trials: 0, reverted: 0, waitMs: FLUX_DRIFT_WAIT_MS, revert: [] };
  for (let t = 0; t < FLUX_DRIFT_TRIALS; t++) {
    const dkey = `${fluxNs(nsOf(t))}/${appName(t)}`;
    let scaledAt;
    let revertedAt;
    const off = watch.onEvent((d, at) => {
      if (`${d.metadata.namespace}/${d.metadata.name}` !== dkey) return;
      if (d.spec.replicas === 3 && scaledAt === undefined) scaledAt = at;
      if (d.spec.replicas === 1 && scaledAt !== undefined && revertedAt === undefined) revertedAt = at;
    });
    kubectl('-n', fluxNs(nsOf(t)), 'scale', `deployment/${appName(t)}`, '--replicas=3');
    await waitFor(`${dkey} reverted`, () => revertedAt !== undefined, { timeoutMs: FLUX_DRIFT_WAIT_MS, intervalMs: 20 }).catch(() => {});
    off();
    drift.trials++;
    if (revertedAt !== undefined) {
      drift.reverted++;
      drift.revert.push(revertedAt - scaledAt);
    }
  }
  drift.stats = stats(drift.revert);
  await Promise.race([allDone, sleep(FLUX_ALL_WAIT_MS)]);
  await sleep(1000);
  Object.assign(change, { allMs: allAt === undefined ? NaN : allAt - ct, allWaitedMs: now() - ct, writes: writesBetween(cb, requestCounters()), requests: requestsBetween(cq, await fluxRequests(flux)) });
  console.log(`flux after the change: ${allAt === undefined ? `not all ${APPS} Kustomizations at the new revision after ${fmt(change.allWaitedMs / 1000, 1)} s` : `all ${APPS} Kustomizations at the new revision after ${fmt(change.allMs / 1000, 1)} s`}; ${fmtWrites(change.writes)}; ${fmtRequests(change.requests)}`);
  console.log(`flux drift (kubectl scale → reverted): ${drift.reverted} of ${drift.trials} reverted within ${fmt(FLUX_DRIFT_WAIT_MS / 1000)} s${drift.reverted ? `: ${fmtStats(drift.stats)}` : ' (corrected at the next reconcile: interval 1 h here)'}`);
  const end = rss();
  clearInterval(sampler);
  console.log(`flux RSS (source-controller + kustomize-controller): peak during the cold sync ${fmt(coldPeak.total)} MiB, settled ${fmt(sumOf(settled))} MiB, peak overall ${fmt(peak.total)} MiB, at the end ${fmt(sumOf(end))} MiB`);

  await flux.stop();
  await gitServer.close();
  removed = true;
  await removeFlux(api, [fluxSystemNs, ...namespaces], true);
  return { version: tools.version, concurrent: FLUX_CONCURRENT, cold, noop, change, drift, rss: { peakColdMiB: coldPeak.total, peakColdByProcess: coldPeak.byProcess, settledMiB: sumOf(settled), settledByProcess: settled, peakMiB: peak.total, endMiB: sumOf(end) } };
}

const sumOf = (o) => Object.values(o).reduce((a, b) => a + b, 0);

main('kubernetes', async () => {
  const dir = tempDir('keelson-bench-k8s-');
  const ops = join(dir, 'ops');
  const plain = join(dir, 'kubectl');
  opsRepository(ops);
  kubectlTree(plain);
  const parallel = join(dir, 'kubectl-parallel');
  parallelTree(parallel);
  onCleanup(() => {
    const names = Array.from({ length: NAMESPACES }, (_, j) => [keelsonNs(j), kubectlNs(j), parallelNs(j)]).flat();
    execFileSync('kubectl', ['delete', 'namespace', '--wait=false', '--ignore-not-found', ...names], { stdio: 'ignore' });
  });
  const version = JSON.parse(kubectl('version', '-o', 'json')).serverVersion.gitVersion;
  console.log(`kubernetes ${version}; ${APPS} apps × 4 objects in ${NAMESPACES} namespaces; run ${RUN}`);
  // An earlier run's namespaces are deleted in the background when it ends; that work would land in this run's
  // first phase (kubectl's), so wait until it is done.
  releaseFluxLeftovers();
  await waitFor('namespaces of earlier runs deleted', () => !kubectl('get', 'namespaces', '-o', 'name').split('\n').some((n) => n.startsWith('namespace/kb-')), { timeoutMs: 900_000, intervalMs: 2000 });
  const watch = deploymentWatch();
  await watch.started;
  if (fluxOnly) {
    const flux = await fluxPhases(dir, ops, watch);
    return { apps: APPS, namespaces: NAMESPACES, kubernetes: version, flux };
  }

  // kubectl, kubectl ×N at once, then Keelson, then Flux: each phase on the same cluster (the previous one's namespaces gone).
  const kc = keelsonOnly ? { applyMs: NaN, availableMs: NaN, writes: { total: NaN, dryRuns: 0, by: {} } } : await kubectlCold(plain, watch);
  console.log(`kubectl apply --server-side cold: apply ${fmt(kc.applyMs / 1000, 1)} s, every Deployment Available ${fmt(kc.availableMs / 1000, 1)} s; ${fmtWrites(kc.writes)}`);
  if (kc.cpu) console.log(`  CPU: ${kc.cpu.text}`);
  const kn = keelsonOnly ? { time: stats([NaN]), writes: kc.writes } : await kubectlNoop(plain);
  console.log(`kubectl apply --server-side no-op: ${fmtStats(kn.time)}; ${fmtWrites(kn.writes)}`);
  // Every cold phase starts from the same cluster: the previous phase's namespaces deleted, and gone.
  if (!keelsonOnly) await deleteNamespaces(Array.from({ length: NAMESPACES }, (_, j) => kubectlNs(j)));
  const kp = keelsonOnly ? undefined : await kubectlParallelCold(parallel, watch);
  if (kp) await deleteNamespaces(Array.from({ length: NAMESPACES }, (_, j) => parallelNs(j)));
  if (kp) console.log(`kubectl apply --server-side, ${NAMESPACES} processes at once, cold: apply ${fmt(kp.applyMs / 1000, 1)} s, every Deployment Available ${fmt(kp.availableMs / 1000, 1)} s\n  CPU: ${kp.cpu.text}`);

  const cold = await keelsonCold(dir, ops, watch);
  const k = cold.k;
  console.log(`keelson cold: every Deployment Available ${fmt(cold.availableMs / 1000, 1)} s, every app Synced+Healthy ${fmt(cold.syncedMs / 1000, 1)} s; ${fmtWrites(cold.writes)}; failed syncs ${cold.failedSyncs}; peak RSS ${fmt(cold.peakRssMiB)} MiB`);
  console.log(`  CPU: ${cold.cpu.text}`);
  await sleep(2000);
  const rssSettled = rssKiB(k.pid) / 1024;
  const memory = await memoryOf(k);
  console.log(`  memory (settled): ${memory.text}`);
  if (process.env.BENCH_HEAP_SNAPSHOT) {
    // With NODE_OPTIONS=--heapsnapshot-signal=SIGUSR2: a snapshot of the settled engine, in its working directory.
    process.kill(k.pid, 'SIGUSR2');
    await sleep(Number(process.env.BENCH_HEAP_SNAPSHOT) * 1000);
  }
  const noop = await keelsonNoop(k);
  console.log(`keelson no-op resync (${NAMESPACES} environments): ${fmtStats(noop.time)}; ${fmtWrites(noop.writes)}`);
  const change = await oneAppChange(k, ops, watch);
  console.log(`keelson 1-app change (${change.app}): webhook → sync completed ${fmt(change.totalMs)} ms (fetch+render ${fmt(change.toSyncStartMs)} ms, sync ${fmt(change.syncMs)} ms, ${change.result}: ${change.summary}); new pod rolled out at ${fmt(change.rolledOutMs)} ms; ${fmtWrites(change.writes)}`);
  const dr = await drift(watch);
  console.log(`drift (kubectl scale → reverted): ${fmtStats(dr.revert, 'ms', 1)}; from running kubectl ${fmtStats(dr.fromCommand)}`);
  const rssEnd = rssKiB(k.pid) / 1024;
  console.log(`keelson RSS: peak during cold sync ${fmt(cold.peakRssMiB)} MiB, settled ${fmt(rssSettled)} MiB, at the end ${fmt(rssEnd)} MiB`);
  const coldRatio = kc.availableMs / cold.availableMs;
  const noopRatio = kn.time.median / noop.time.median;
  console.log(`ratios: cold kubectl/keelson ${coldRatio.toFixed(2)}×, no-op kubectl/keelson ${noopRatio.toFixed(1)}×`);
  await k.stop();
  // Flux's cold phase starts from the same cluster as the others: Keelson's namespaces deleted, and gone.
  // A Flux phase that fails or times out does not lose the figures of the others: the section says what happened.
  const flux = keelsonOnly || noFlux
    ? undefined
    : (await deleteNamespaces(Array.from({ length: NAMESPACES }, (_, j) => keelsonNs(j))),
      await fluxPhases(dir, ops, watch).catch((err) => {
        console.error(`flux failed: ${err?.stack ?? err}`);
        return { error: String(err?.message ?? err) };
      }));

  const result = {
    apps: APPS,
    namespaces: NAMESPACES,
    kubernetes: version,
    kubectl: { cold: kc, noop: kn, parallel: kp },
    keelson: { cold: { availableMs: cold.availableMs, syncedMs: cold.syncedMs, writes: cold.writes, failedSyncs: cold.failedSyncs, cpu: cold.cpu, peakRssMiB: cold.peakRssMiB }, noop, change, drift: dr, rss: { peakMiB: cold.peakRssMiB, settledMiB: rssSettled, endMiB: rssEnd }, memory },
    flux,
    ratios: { cold: coldRatio, noop: noopRatio },
  };
  if (flux && !flux.error) printSideBySide(result);
  if (writeReport) writeSection(result);
  return result;
});

// ---- BENCHMARKS.md, between the kubernetes markers only

const cpuOfPart = (cpu, name) => cpu?.parts.find(([n]) => n === name)?.[1] ?? NaN;

/** The lowest control-plane CPU any peer's cold phase cost (serial kubectl, kubectl ×N, Flux): the floor to beat. */
function controlPlaneFloor(r) {
  const peers = [
    ['serial kubectl', r.kubectl?.cold?.cpu],
    [`kubectl ×${r.namespaces} at once`, r.kubectl?.parallel?.cpu],
    [`Flux`, r.flux && !r.flux.error ? r.flux.cold?.cpu : undefined],
  ].map(([name, cpu]) => ({ name, cpu: clusterCpu(cpu) })).filter((p) => Number.isFinite(p.cpu));
  return peers.reduce((best, p) => (!(best.cpu <= p.cpu) ? p : best), { name: 'no peer measured', cpu: NaN });
}

const floorText = (r) => {
  const f = controlPlaneFloor(r);
  return Number.isFinite(f.cpu) ? `at least ${fmt(f.cpu, 0)} CPU-seconds (the lowest of the peers' phases: ${f.name})` : 'not measured for a peer in this run';
};

/** The processes of the tools compared (and what serves them), not of the control plane. */
const TOOL_PROCESSES = ['keelson', 'source-controller', 'kustomize-controller'];
const isTool = (name) => TOOL_PROCESSES.includes(name) || name.startsWith('kubectl') || name.startsWith('git http-backend');
/** CPU seconds of the control plane's processes in a phase (not the tools being compared). */
const clusterCpu = (cpu) => (cpu ? cpu.parts.filter(([name]) => !isTool(name)).reduce((n, [, v]) => n + v, 0) : NaN);
/** CPU seconds of the tools' own processes in a phase. */
const toolCpu = (cpu) => (cpu ? cpu.parts.filter(([name]) => isTool(name)).reduce((n, [, v]) => n + v, 0) : NaN);

/**
 * Keelson, kubectl and Flux per phase, with the ratio peer ÷ Keelson (above 1: Keelson is ahead), for the console and
 * BENCHMARKS.md. Cells are text; `kubectl` is serial kubectl, `kubectlX` the ×N processes at once.
 */
function phaseRows(r) {
  const k = r.keelson;
  const f = r.flux;
  const c = r.kubectl;
  const s = (ms) => `${fmt(ms / 1000, 1)} s`;
  const ms = (v) => `${fmt(v)} ms`;
  const ratio = (peer, mine) => (Number.isFinite(peer) && Number.isFinite(mine) && mine > 0 ? `${peer / mine >= 10 ? (peer / mine).toFixed(0) : (peer / mine).toFixed(2)}×` : peer === 0 && mine === 0 ? '=' : mine === 0 && peer > 0 ? 'Keelson 0' : '—');
  const w = (x) => (x ? `${x.total}${x.dryRuns ? ` + ${x.dryRuns} dry-run` : ''}` : 'n/a');
  const driftFlux = f.drift.reverted ? `${ms(f.drift.stats.median)} (${f.drift.reverted} of ${f.drift.trials})` : `not reverted within ${fmt(f.drift.waitMs / 1000)} s (${f.drift.trials} trials)`;
  return [
    { phase: 'cold sync: every Deployment Available', keelson: s(k.cold.availableMs), kubectl: s(c.cold.availableMs), kubectlX: c.parallel ? s(c.parallel.availableMs) : 'n/a', flux: s(f.cold.availableMs), vsKubectl: ratio(c.cold.availableMs, k.cold.availableMs), vsKubectlX: ratio(c.parallel?.availableMs, k.cold.availableMs), vsFlux: ratio(f.cold.availableMs, k.cold.availableMs) },
    { phase: 'cold sync: write requests', keelson: w(k.cold.writes), kubectl: w(c.cold.writes), kubectlX: '', flux: w(f.cold.writes), vsKubectl: ratio(c.cold.writes.total, k.cold.writes.total), vsKubectlX: '', vsFlux: ratio(f.cold.writes.total, k.cold.writes.total) },
    { phase: "cold sync: the tool's own CPU", keelson: `${fmt(toolCpu(k.cold.cpu), 1)} CPU-s`, kubectl: `${fmt(toolCpu(c.cold.cpu), 1)} CPU-s`, kubectlX: c.parallel ? `${fmt(toolCpu(c.parallel.cpu), 1)} CPU-s` : 'n/a', flux: `${fmt(toolCpu(f.cold.cpu), 1)} CPU-s`, vsKubectl: ratio(toolCpu(c.cold.cpu), toolCpu(k.cold.cpu)), vsKubectlX: ratio(toolCpu(c.parallel?.cpu), toolCpu(k.cold.cpu)), vsFlux: ratio(toolCpu(f.cold.cpu), toolCpu(k.cold.cpu)) },
    { phase: 'cold sync: control-plane CPU', keelson: `${fmt(clusterCpu(k.cold.cpu), 1)} CPU-s`, kubectl: `${fmt(clusterCpu(c.cold.cpu), 1)} CPU-s`, kubectlX: c.parallel ? `${fmt(clusterCpu(c.parallel.cpu), 1)} CPU-s` : 'n/a', flux: `${fmt(clusterCpu(f.cold.cpu), 1)} CPU-s`, vsKubectl: ratio(clusterCpu(c.cold.cpu), clusterCpu(k.cold.cpu)), vsKubectlX: ratio(clusterCpu(c.parallel?.cpu), clusterCpu(k.cold.cpu)), vsFlux: ratio(clusterCpu(f.cold.cpu), clusterCpu(k.cold.cpu)) },
    { phase: 'no-op resync (median)', keelson: ms(k.noop.time.median), kubectl: ms(c.noop.time.median), kubectlX: '', flux: f.noop.time.n ? ms(f.noop.time.median) : 'not measured', vsKubectl: ratio(c.noop.time.median, k.noop.time.median), vsKubectlX: '', vsFlux: ratio(f.noop.time.median, k.noop.time.median) },
    { phase: 'no-op resync: write requests', keelson: w(k.noop.writes), kubectl: w(c.noop.writes), kubectlX: '', flux: w(f.noop.writes), vsKubectl: ratio(c.noop.writes.total, k.noop.writes.total), vsKubectlX: '', vsFlux: ratio(f.noop.writes?.total, k.noop.writes.total) },
    { phase: '1-app change: commit → applied and Ready', keelson: ms(k.change.totalMs), kubectl: '', kubectlX: '', flux: ms(f.change.totalMs), vsKubectl: '', vsKubectlX: '', vsFlux: ratio(f.change.totalMs, k.change.totalMs) },
    { phase: 'drift: `kubectl scale` → reverted (median)', keelson: ms(k.drift.revert.median), kubectl: '', kubectlX: '', flux: driftFlux, vsKubectl: '', vsKubectlX: '', vsFlux: f.drift.reverted ? ratio(f.drift.stats.median, k.drift.revert.median) : `> ${fmt(f.drift.waitMs / Math.max(k.drift.revert.median, 1))}×` },
    { phase: 'peak memory during the cold sync (RSS)', keelson: `${fmt(k.cold.peakRssMiB ?? k.rss.peakMiB)} MiB`, kubectl: '', kubectlX: '', flux: `${fmt(f.rss.peakColdMiB)} MiB (both controllers)`, vsKubectl: '', vsKubectlX: '', vsFlux: ratio(f.rss.peakColdMiB, k.cold.peakRssMiB ?? k.rss.peakMiB) },
    { phase: 'memory, settled after the cold sync (RSS)', keelson: `${fmt(k.rss.settledMiB)} MiB`, kubectl: '', kubectlX: '', flux: `${fmt(f.rss.settledMiB)} MiB`, vsKubectl: '', vsKubectlX: '', vsFlux: ratio(f.rss.settledMiB, k.rss.settledMiB) },
  ];
}

function printSideBySide(r) {
  const rows = phaseRows(r);
  const cols = [['phase', 'phase'], ['Keelson', 'keelson'], ['kubectl', 'kubectl'], [`kubectl ×${r.namespaces}`, 'kubectlX'], [`Flux ${r.flux.version}`, 'flux'], ['kubectl ÷ K', 'vsKubectl'], [`×${r.namespaces} ÷ K`, 'vsKubectlX'], ['Flux ÷ K', 'vsFlux']];
  const width = cols.map(([h, key]) => Math.max(h.length, ...rows.map((row) => String(row[key]).length)));
  const line = (cells) => cells.map((c, n) => String(c).padEnd(width[n])).join('  ');
  console.log(`\nside by side, ${r.apps} apps × 4 objects (ratio: the peer's figure ÷ Keelson's; above 1, Keelson is ahead):`);
  console.log(line(cols.map(([h]) => h)));
  for (const row of rows) console.log(line(cols.map(([, key]) => row[key])));
}

const SIZES_RE = /<!-- kubernetes-sizes (\{.*\}) -->/;

/** Rows of the growth table kept from earlier runs at other sizes (in the section as an HTML comment), this run's added. */
function sizesWith(r, file) {
  let sizes = {};
  try {
    sizes = JSON.parse(SIZES_RE.exec(readFileSync(file, 'utf8'))?.[1] ?? '{}');
  } catch {
    sizes = {};
  }
  const rows = phaseRows(r);
  sizes[r.apps] = { at: new Date().toISOString().slice(0, 16).replace('T', ' '), rows: rows.map((x) => ({ phase: x.phase, keelson: x.keelson, kubectlX: x.kubectlX, flux: x.flux, vsKubectlX: x.vsKubectlX, vsFlux: x.vsFlux })) };
  return sizes;
}

/** The Flux part of the section: side by side at this size, growth over the sizes measured, method. */
function fluxBlock(r, file) {
  const f = r.flux;
  const rows = phaseRows(r);
  const sizes = sizesWith(r, file);
  const ns = Object.keys(sizes).map(Number).sort((a, b) => a - b);
  const phases = rows.map((x) => x.phase);
  const cell = (n, phase, key, ratioKey) => {
    const row = sizes[n].rows.find((x) => x.phase === phase);
    return row && row[key] ? `${row.keelson} · ${row[key]} · **${row[ratioKey] || '—'}**` : '';
  };
  const json = JSON.stringify(sizes).replace(/--/g, '-\\u002d');
  const byProcess = (o) => Object.entries(o).map(([n, v]) => `${n} ${fmt(v)} MiB`).join(' + ');
  return `
### Side by side with Flux (${r.apps} apps)

The same ${r.apps} apps handed to Flux ${f.version} (source-controller + kustomize-controller, run on this machine
against the same control plane) as ${r.apps} Kustomizations, one per app, from one GitRepository of the same ops
repository. Ratios are the peer's figure ÷ Keelson's: above 1, Keelson is ahead.

| phase | Keelson | \`kubectl apply --server-side\` | kubectl ×${r.namespaces} at once | Flux ${f.version} | kubectl ÷ Keelson | ×${r.namespaces} ÷ Keelson | Flux ÷ Keelson |
| --- | --- | --- | --- | --- | --- | --- | --- |
${rows.map((x) => `| ${x.phase} | ${x.keelson} | ${x.kubectl} | ${x.kubectlX} | ${x.flux} | ${x.vsKubectl} | ${x.vsKubectlX} | ${x.vsFlux} |`).join('\n')}

Growth: each cell is Keelson · the peer · **peer ÷ Keelson**, from the last run at that size (date in the header row).

<!-- kubernetes-sizes ${json} -->
| phase | ${ns.map((n) => `${n} apps (${sizes[n].at} UTC)`).join(' | ')} |
| --- | ${ns.map(() => '---').join(' | ')} |
${phases.map((phase) => `| ${phase}, Flux | ${ns.map((n) => cell(n, phase, 'flux', 'vsFlux')).join(' | ')} |`).join('\n')}
| cold sync, kubectl ×${r.namespaces} at once | ${ns.map((n) => cell(n, phases[0], 'kubectlX', 'vsKubectlX')).join(' | ')} |

How Flux is run and measured. \`bench/peers/flux.sh build\` builds source-controller and kustomize-controller
${f.version} from their Go modules into \`~/.cache/keelson-testenv/flux-${f.version}\` (pinned; once). The modules carry
\`replace\` directives, so each is built inside a copy of its module with the nested \`api\` module of the same version
in \`./api\`; source-controller ${f.version} requires \`github.com/fluxcd/pkg/artifact v0.18.3\`, which the Go module proxy
reachable here does not serve, so **\`github.com/fluxcd/pkg/artifact\` is pinned to v0.18.0** with a \`replace\`. Their
CRDs (\`config/crd/bases\` of the modules) are applied to the cluster. Both controllers run as processes outside the
cluster, as kube-apiserver does: \`KUBECONFIG\` and \`RUNTIME_NAMESPACE\` in the environment,
\`--enable-leader-election=false\`, metrics and health on loopback, source-controller's artifact storage in a temp dir
served on loopback (\`--storage-path/--storage-addr/--storage-adv-addr\`), kustomize-controller with
\`--concurrent=${f.concurrent}\` (as in Flux's own benchmark, fluxcd/flux-benchmark; the default is 4), every other flag at
its default (client-side rate limit \`--kube-api-qps=50 --kube-api-burst=300\`). The GitRepository reads the ops
repository over git's smart HTTP protocol (\`git http-backend\` behind a loopback Node server, \`bench/git-http.mjs\`;
Flux's git client does not speak the dumb protocol); its CGI processes' CPU is counted as "git http-backend". Each
Kustomization: \`path: ./manifests/<app>\` (the same manifests Keelson applies), \`targetNamespace\` the app's
namespace, \`prune: true\`, \`wait: true\` (Flux's health check of every object it applied: the Deployment rolled out,
as Keelson's Healthy), \`interval: 1h\`, so that no phase waits for, or is helped by, a timer: every reconcile is
requested the way \`flux reconcile\` does it, by a new value of the annotation \`reconcile.fluxcd.io/requestedAt\`.
Flux's controllers are started (and ready) before its cold phase, as in a cluster where Flux is installed; the
cold phase starts when the bench creates the ${r.namespaces} namespaces, the GitRepository and the ${r.apps}
Kustomizations (the GitRepository first, until it has an artifact: ${fmt(f.cold.sourceMs / 1000, 1)} s; a Kustomization
whose source has no artifact yet would wait \`--requeue-dependency\`, 30 s; all created by
${fmt(f.cold.createdMs / 1000, 1)} s), and ends when every Deployment is Available (every Kustomization Ready:
${fmt(f.cold.readyMs / 1000, 1)} s). Requests both controllers sent in it (client-go's \`rest_client_requests_total\`, exact
per process): ${fmtRequests(f.cold.requests)}. No-op: a reconcile of every Kustomization requested, until
each has handled it and is Ready (median of ${f.noop.time.n}${f.noop.time.n ? '' : ': not measured in this run, BENCH_FLUX_NOOP_RUNS=0'}): ${fmtWrites(f.noop.writes)}; the controllers'
own count: ${fmtRequests(f.noop.requests)} — kustomize-controller fetches and unpacks the source's artifact, builds
the kustomization, dry-runs every object (server-side apply) and applies what differs, then checks health, and
patches the Kustomization's status as it goes. 1-app change: the app's manifest committed with a new
image, a reconcile of the GitRepository requested, until that app's Kustomization is applied at the new revision and
Ready (source at the new commit after ${fmt(f.change.fetchMs)} ms; the new pod rolled out at
${fmt(f.change.rolledOutMs)} ms); a new revision of the source makes kustomize-controller reconcile every
Kustomization of that source: ${Number.isFinite(f.change.allMs) ? `all ${r.apps} were at the new revision after ${fmt(f.change.allMs / 1000, 1)} s` : `not all ${r.apps} were at the new revision after ${fmt(f.change.allWaitedMs / 1000, 1)} s, when the bench stopped waiting`}
(${fmtWrites(f.change.writes)}; ${fmtRequests(f.change.requests)}, in that window, which includes the drift trials). Drift: kustomize-controller has no drift detection between reconciles; a
\`kubectl scale\` is corrected at the next reconcile (here its interval, 1 h; 5–10 min is common), so each of
${f.drift.trials} trials waited ${fmt(f.drift.waitMs / 1000)} s. Memory: RSS of both controllers added up, sampled every
200 ms (peak in the cold phase ${byProcess(f.rss.peakColdByProcess)}; settled ${byProcess(f.rss.settledByProcess)}).
CPU of Flux's cold phase: ${f.cold.cpu.text}.
Flux's phases run after Keelson's, on the same cluster, with Keelson's namespaces deleted and gone; Flux's objects
and namespaces are removed after its phases (the controllers stopped first, their finalizers released). The write
counts of every tool are the API server's, for the whole cluster: on a shared cluster, other users' writes in the
same window (e.g. DELETE and POST of namespaces and their ConfigMaps by other test runs) are in them too; the
controllers' own request counts above are Flux's alone.`;
}

function writeSection(r) {
  const file = benchmarksFile;
  const start = '<!-- kubernetes:start -->';
  const end = '<!-- kubernetes:end -->';
  const k = r.keelson;
  const goal = (ok) => (ok ? 'met' : '**not met**');
  const block = `${start}
## Kubernetes target

${r.apps} apps × 4 objects (Deployment with 1 replica, headless Service, ConfigMap, ServiceAccount) in ${r.namespaces}
namespaces (one environment each), on the test control plane of \`scripts/testenv.sh\` (kube-apiserver ${r.kubernetes},
etcd, kube-controller-manager, kube-scheduler, one kwok node; all on this machine). Command:
\`scripts/testenv.sh start && eval "$(scripts/testenv.sh env)" && npm run build && node bench/kubernetes.mjs\`
(\`BENCH_APPS\`, \`BENCH_NAMESPACES\`, \`BENCH_DRIFT_TRIALS\` change the sizes). Run ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on
${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}.

| measure | Keelson | \`kubectl apply --server-side\` | ratio | goal |
| --- | --- | --- | --- | --- |
| cold sync, until every Deployment is Available | ${fmt(k.cold.availableMs / 1000, 1)} s (every app Synced + Healthy: ${fmt(k.cold.syncedMs / 1000, 1)} s) | ${fmt(r.kubectl.cold.availableMs / 1000, 1)} s (apply returned after ${fmt(r.kubectl.cold.applyMs / 1000, 1)} s) | ${r.ratios.cold.toFixed(2)}× | ≥ 3×: ${goal(r.ratios.cold >= 3)} |
| cold sync, \`kubectl apply --server-side\` ×${r.namespaces} processes at once (one per namespace) | | ${r.kubectl.parallel ? `${fmt(r.kubectl.parallel.availableMs / 1000, 1)} s` : 'not measured'} | ${r.kubectl.parallel ? `${(r.kubectl.parallel.availableMs / k.cold.availableMs).toFixed(2)}×` : ''} | |
| cold sync, write requests | ${k.cold.writes.total}${k.cold.writes.dryRuns ? ` + ${k.cold.writes.dryRuns} dry-runs` : ''} | ${r.kubectl.cold.writes.total} | | |
| no-op resync (median of ${k.noop.time.n}) | ${fmt(k.noop.time.median)} ms, **${k.noop.writes.total} writes**${k.noop.writes.dryRuns ? `, ${k.noop.writes.dryRuns} dry-runs` : ''} | ${fmt(r.kubectl.noop.time.median)} ms, ${r.kubectl.noop.writes.total} writes | ${r.ratios.noop.toFixed(0)}× | ≥ 10× and 0 writes: ${goal(r.ratios.noop >= 10 && k.noop.writes.total === 0)} |
| commit changing 1 app: webhook → sync completed (new pod Ready) | ${fmt(k.change.totalMs)} ms (fetch + render ${fmt(k.change.toSyncStartMs)} ms, apply + health ${fmt(k.change.syncMs)} ms), ${k.change.writes.total} writes | | | < 1 s: ${goal(k.change.totalMs < 1000)} |
| drift: \`kubectl scale\` → reverted (median of ${k.drift.revert.n}) | ${fmt(k.drift.revert.median)} ms (min ${fmt(k.drift.revert.min)}, max ${fmt(k.drift.revert.max)}) | | | < 1 s: ${goal(k.drift.revert.median < 1000)} |
| Keelson RSS | peak during the cold sync ${fmt(k.rss.peakMiB)} MiB, settled ${fmt(k.rss.settledMiB)} MiB, after the no-op, change and drift phases ${fmt(k.rss.endMiB)} MiB | | | < 250 MiB: ${goal(k.rss.peakMiB < 250)} |

How it is measured: the tools work on identical objects in their own namespaces, one after the other, each on the
same cluster: the previous cold phase's namespaces are deleted and gone before the next one starts (kubectl's no-op
runs before its objects go). Availability comes from a watch on Deployments (condition \`Available\`). Write requests
are kube-apiserver's own \`apiserver_request_total\` (POST, PUT, PATCH, APPLY, DELETE of deployments, services,
configmaps, serviceaccounts and namespaces, not status) before and after each phase; they include what the
controllers write in that window (e.g. each new namespace's \`kube-root-ca.crt\` ConfigMap and \`default\`
ServiceAccount). 1-app change writes: ${fmtWrites(k.change.writes)}. The no-op resync is a manual sync of all
${r.namespaces} environments at once (\`POST /api/v1/environments/<env>/sync\`); kubectl's no-op re-applies every
manifest. Drift is timed from the watch event carrying \`replicas: 3\` to the one carrying \`replicas: 1\` again
(from starting the \`kubectl scale\` process: median ${fmt(k.drift.fromCommand.median)} ms); each trial scales a
different Deployment, since repeated fights on one object back off on purpose.

Where the time and memory go. CPU seconds per process from \`/proc/<pid>/stat\` over each cold phase:
- kubectl: ${r.kubectl.cold.cpu ? r.kubectl.cold.cpu.text : 'not measured'};
- kubectl ×${r.namespaces} at once: ${r.kubectl.parallel ? r.kubectl.parallel.cpu.text : 'not measured'};
- Keelson: ${k.cold.cpu.text}.

The cluster's own work for ${r.apps} Deployments (kube-apiserver, etcd, the controllers, the scheduler and kwok
write about ten times per Deployment: ReplicaSet, Pod, binding, statuses, events) was ${floorText(r)}, so on ${os.cpus().length} cores no
client can make every Deployment Available in less than about ${fmt(controlPlaneFloor(r).cpu / os.cpus().length, 0)} s here (the floor is the best peer's control-plane CPU
over the cores, not Keelson's own: ${fmt(clusterCpu(k.cold.cpu), 0)} CPU-s in Keelson's phase); a 3× lead over kubectl's ${fmt(r.kubectl.cold.availableMs / 1000, 0)} s would need ${fmt(r.kubectl.cold.availableMs / 3000, 0)} s. Keelson applies in
parallel (32 writes in flight) and keeps the cores busy, so its time follows the machine: kubectl run as
${r.namespaces} processes at once, the fastest way a script can use it, meets the same wall (row above). Serial kubectl
cost the API server more CPU for the same objects (${fmt(cpuOfPart(r.kubectl.cold.cpu, 'kube-apiserver'), 0)} CPU-s against ${fmt(cpuOfPart(k.cold.cpu, 'kube-apiserver'), 0)} for Keelson). Keelson's own
share (${fmt(cpuOfPart(k.cold.cpu, 'keelson'), 1)} CPU-s) is its part of the bill.
Keelson's memory, settled after the cold sync, from its own \`/metrics\`: ${k.memory.text}. The
Kubernetes client is Keelson's own (\`src/targets/kubernetes/client.ts\`: plain JSON, one keep-alive pool per cluster
shared by its environments): the generated client it replaced cost about 80 MiB of RSS by being loaded and a
socket pool per environment. The 1-app change spends most of its time before the sync starts (fetch, checkout,
render and plan of the new revision in the engine), the Kubernetes apply and health wait about ${fmt(k.change.syncMs)} ms.
${r.flux?.error ? `\nFlux side by side: **not measured in this run**: ${r.flux.error}\n` : r.flux ? fluxBlock(r, file) : ''}
${end}`;
  // The block without its markers goes through lib.mjs, which keeps every other section and feeds run.mjs's summary.
  const summary = [
    { measure: `Kubernetes, ${r.apps} apps: cold sync until every Deployment is Available`, value: `${fmt(k.cold.availableMs / 1000, 1)} s`, goal: '≥ 3× faster than kubectl', met: r.ratios.cold >= 3, peer: `kubectl apply --server-side ${fmt(r.kubectl.cold.availableMs / 1000, 1)} s`, ratio: `${r.ratios.cold.toFixed(2)}×` },
    { measure: `Kubernetes, ${r.apps} apps: no-op resync`, value: `${fmt(k.noop.time.median)} ms, ${k.noop.writes.total} writes`, goal: '≥ 10× faster, 0 writes', met: r.ratios.noop >= 10 && k.noop.writes.total === 0, peer: `kubectl ${fmt(r.kubectl.noop.time.median)} ms, ${r.kubectl.noop.writes.total} writes`, ratio: `${r.ratios.noop.toFixed(0)}×` },
    { measure: 'Kubernetes: commit changing 1 app → sync completed', value: `${fmt(k.change.totalMs)} ms`, goal: '< 1000 ms', met: k.change.totalMs < 1000, peer: '', ratio: '' },
    { measure: 'Kubernetes: drift reverted', value: `${fmt(k.drift.revert.median)} ms`, goal: '< 1000 ms', met: k.drift.revert.median < 1000, peer: '', ratio: '' },
    { measure: 'Kubernetes: Keelson peak RSS', value: `${fmt(k.rss.peakMiB)} MiB`, goal: '< 250 MiB', met: k.rss.peakMiB < 250, peer: '', ratio: '' },
  ];
  writeBenchSection('kubernetes', block.slice(start.length, -end.length), { file, summary, command: benchCommand('kubernetes') });
}
