/**
 * Helm charts on the Kubernetes target, on the test control plane: N apps from one chart (ServiceAccount, ConfigMap,
 * headless Service, Deployment; each app its own release) in 10 namespaces, rendered by the real Helm.
 *
 *   render        one app's `helm template` as the target runs it: offline (client mode), and with `lookup` against
 *                 the cluster (server mode, what a sync uses); median of BENCH_RENDER_SAMPLES
 *   cold sync     `keelson up` on a fresh state dir until every app is Synced and Healthy
 *   no-op resync  a manual sync of every environment (nothing re-rendered: the templates did not change)
 *   RSS           of the `keelson up` process
 *
 *   scripts/testenv.sh start && eval "$(scripts/testenv.sh env)" && eval "$(scripts/tools.sh env)" && npm run build && node bench/helm.mjs
 *   BENCH_APPS=100 node bench/helm.mjs --no-write     # smaller, leaves BENCHMARKS.md alone
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { commitAll, dist, fmt, fmtStats, freePort, gitInit, main, needControlPlane, now, onCleanup, rssKiB, startKeelson, stats, tempDir, waitFor, writeTree } from './lib.mjs';

const APPS = Number(process.env.BENCH_APPS ?? 1000);
const NAMESPACES = Number(process.env.BENCH_NAMESPACES ?? 10);
const RENDER_SAMPLES = Number(process.env.BENCH_RENDER_SAMPLES ?? 20);
const NOOP_RUNS = Number(process.env.BENCH_NOOP_RUNS ?? 3);
const RUN = `${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;

needControlPlane('bench/helm.mjs');

const appName = (i) => `app-${String(i).padStart(4, '0')}`;
const nsOf = (i) => Math.floor((i * NAMESPACES) / APPS);
const keelsonNs = (j) => `kh-${RUN}-${j}`;
const envName = (j) => `ns${j}`;

const chart = {
  'charts/app/Chart.yaml': 'apiVersion: v2\nname: app\nversion: 1.0.0\n',
  'charts/app/values.yaml': 'version: "1.0.0"\ngreeting: hello\n',
  'charts/app/templates/all.yaml': `apiVersion: v1
kind: ServiceAccount
metadata: { name: {{ .Release.Name }} }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: {{ .Release.Name }} }
data: { GREETING: {{ printf "%s from %s" .Values.greeting .Release.Name | quote }}, LOG_LEVEL: info }
---
apiVersion: v1
kind: Service
metadata: { name: {{ .Release.Name }} }
spec:
  clusterIP: None
  selector: { app: {{ .Release.Name }} }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: {{ .Release.Name }} }
spec:
  replicas: 1
  selector: { matchLabels: { app: {{ .Release.Name }} } }
  template:
    metadata: { labels: { app: {{ .Release.Name }} } }
    spec:
      serviceAccountName: {{ .Release.Name }}
      containers:
      - name: web
        image: registry.example/bench/web:{{ .Values.version }}
        envFrom: [{ configMapRef: { name: {{ .Release.Name }} } }]
        ports: [{ name: http, containerPort: 8080 }]
`,
};

function opsRepository(dir) {
  const files = { ...chart };
  const envApps = Array.from({ length: NAMESPACES }, () => []);
  for (let i = 0; i < APPS; i++) {
    files[`apps/${appName(i)}.yaml`] = `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: ${appName(i)} }
spec:
  version: "1.0.0"
  manifests: ../charts/app
  helm: { values: { greeting: hi } }
`;
    envApps[nsOf(i)].push(appName(i));
  }
  for (let j = 0; j < NAMESPACES; j++) {
    files[`environments/${envName(j)}.yaml`] = `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata: { name: ${envName(j)} }
spec:
  target: { kubernetes: { namespace: ${keelsonNs(j)} } }
  apps:
${envApps[j].map((a) => `    ${a}: {}\n`).join('')}`;
  }
  writeTree(dir, files);
  gitInit(dir);
  commitAll(dir, `${APPS} apps from one chart in ${NAMESPACES} namespaces`);
}

/** One app's render as the target runs it, offline and with lookup against the cluster. */
async function renderTimes(ops) {
  const { renderApp } = await import(dist('targets/kubernetes/render.js'));
  const app = { name: appName(0), env: 'bench', version: '1.0.0', artifact: { path: 'charts/app' }, command: [], vars: {}, replicas: 1, dependsOn: [], progressDeadlineSeconds: 60, terminationGracePeriodSeconds: 30, source: { file: 'x', line: 1, col: 1 }, manifests: { dir: 'charts/app', replicas: false }, helm: { releaseName: appName(0), values: { greeting: 'hi' }, valuesFiles: [] } };
  const time = async (ctx) => {
    const samples = [];
    for (let n = 0; n < RENDER_SAMPLES; n++) {
      const t0 = now();
      const objects = await renderApp(app, ops, ctx);
      samples.push(now() - t0);
      if (objects.length !== 4) throw new Error(`the chart rendered ${objects.length} objects, not 4`);
    }
    return stats(samples);
  };
  return { offline: await time({ namespace: keelsonNs(0) }), lookup: await time({ namespace: keelsonNs(0), lookup: { kubeconfig: process.env.KUBECONFIG } }) };
}

main(
  'helm',
  async () => {
    const dir = tempDir('keelson-bench-helm-');
    const ops = join(dir, 'ops');
    opsRepository(ops);
    onCleanup(() => execFileSync('kubectl', ['delete', 'namespace', '--wait=false', '--ignore-not-found', ...Array.from({ length: NAMESPACES }, (_, j) => keelsonNs(j))], { stdio: 'ignore' }));
    const helm = execFileSync(process.env.KEELSON_HELM_BIN || 'helm', ['version', '--short'], { encoding: 'utf8' }).trim();
    const version = JSON.parse(execFileSync('kubectl', ['version', '-o', 'json'], { encoding: 'utf8' })).serverVersion.gitVersion;
    console.log(`kubernetes ${version}, helm ${helm}; ${APPS} apps from one chart (4 objects each) in ${NAMESPACES} namespaces; run ${RUN}`);

    const render = await renderTimes(ops);
    console.log(`render per app: offline ${fmtStats(render.offline)}; with lookup (server mode) ${fmtStats(render.lookup)}`);

    const k = startKeelson({ repo: ops, stateDir: join(dir, 'state'), apiPort: await freePort(), poll: '30s', logFile: join(dir, 'keelson.log') });
    let peakRss = 0;
    const sampler = setInterval(() => {
      try {
        peakRss = Math.max(peakRss, rssKiB(k.pid));
      } catch {}
    }, 200);
    onCleanup(() => clearInterval(sampler));
    const t0 = now();
    await waitFor('every app Synced and Healthy', async () => {
      const apps = (await k.get('/api/v1/status')).environments.flatMap((e) => e.apps);
      return apps.length === APPS && apps.every((a) => a.health === 'Healthy' && a.sync === 'Synced');
    }, { timeoutMs: 3_600_000, intervalMs: 500 });
    const coldMs = now() - t0;
    clearInterval(sampler);
    const failed = (await k.get('/api/v1/history?limit=1000')).syncs.filter((s) => s.result === 'Failed').length;
    console.log(`keelson cold: every app Synced+Healthy ${fmt(coldMs / 1000, 1)} s (${fmt(coldMs / APPS, 0)} ms per app); failed syncs ${failed}; peak RSS ${fmt(peakRss / 1024)} MiB`);

    const noops = [];
    for (let r = 0; r < NOOP_RUNS; r++) {
      const t1 = now();
      const results = await Promise.all(Array.from({ length: NAMESPACES }, (_, j) => k.post(`/api/v1/environments/${envName(j)}/sync`)));
      noops.push(now() - t1);
      const changed = results.filter((x) => x.result !== 'Unchanged');
      if (changed.length) throw new Error(`a no-op sync changed something: ${JSON.stringify(changed)}`);
    }
    const noop = stats(noops);
    console.log(`keelson no-op resync (${NAMESPACES} environments): ${fmtStats(noop)}`);
    await k.stop();
    return { apps: APPS, namespaces: NAMESPACES, kubernetes: version, helm, render, cold: { ms: coldMs, perAppMs: coldMs / APPS, failedSyncs: failed, peakRssMiB: peakRss / 1024 }, noop };
  },
  (r) => ({
    markdown: `## Helm charts on the Kubernetes target

${r.apps} apps from one local chart (ServiceAccount, ConfigMap, headless Service, Deployment; one release per app) in
${r.namespaces} namespaces, rendered by Helm \`${r.helm}\` on the test control plane (${r.kubernetes}).

| measure | value |
| --- | --- |
| render of one app, offline (\`helm template\`, client mode) | ${fmtStats(r.render.offline)} |
| render of one app with \`lookup\` (server mode, what a sync runs) | ${fmtStats(r.render.lookup)} |
| cold sync until every app is Synced and Healthy | ${fmt(r.cold.ms / 1000, 1)} s (${fmt(r.cold.perAppMs, 0)} ms per app), failed syncs ${r.cold.failedSyncs} |
| no-op resync of every environment | ${fmtStats(r.noop)} (nothing re-rendered) |
| Keelson peak RSS during the cold sync | ${fmt(r.cold.peakRssMiB)} MiB |

Each render is one \`helm\` process; a sync renders an app only when its template (spec, values, values files, chart
directory content) changed, so a no-op resync runs no Helm at all.`,
    summary: [{ measure: `Helm, ${r.apps} apps from one chart: cold sync`, value: `${fmt(r.cold.ms / 1000, 1)} s`, goal: '', met: null, peer: '', ratio: '' }],
  }),
);
