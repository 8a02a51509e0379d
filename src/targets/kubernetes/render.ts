/**
 * A desired app → the Kubernetes objects it stands for: the target-neutral App (`image`) as a Deployment plus a
 * Service when it has a port, or a directory of manifests (plain YAML, recursive, or Kustomize) with the
 * environment's overrides applied (version → image tag, replicas, env).
 */
import { execFile } from 'node:child_process';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import type { DesiredApp, Probe } from '../../core/model.js';
import { TerminalError } from '../../core/errors.js';
import type { KObject } from './objects.js';
import { renders } from './limit.js';
import { checkInside, isHelmChart, renderHelm, type HelmRenderOptions } from './helm.js';
import { fetchChart, resolveDependencies } from './chart-source.js';
import { isJsonnetDir, renderJsonnet } from './jsonnet.js';
import { noObjectsMessage } from './no-objects.js';

/** What a Helm chart app needs of the environment (helm.ts); every field optional, so offline rendering works. */
export type HelmContext = Partial<Omit<HelmRenderOptions, 'checkoutDir' | 'checked'>> & {
  /** Where remote charts and resolved dependencies are cached (`<state>/charts`). Without it, remote charts cannot render. */
  chartCacheDir?: string;
  /** Only charts already in the cache (keelson validate): a missing one is a ChartNotCachedError, never a download. */
  offline?: boolean;
};

/** Annotations that trace a Helm app's live objects to the chart they came from (name@version and package digest). */
export const ANNOTATION_HELM_CHART = 'keelson.dev/helm-chart';
export const ANNOTATION_HELM_CHART_DIGEST = 'keelson.dev/helm-chart-digest';

const run = promisify(execFile);

export const KUSTOMIZATION_FILES = ['kustomization.yaml', 'kustomization.yml', 'Kustomization'];
const WORKLOADS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job', 'CronJob']);
const SCALABLE = new Set(['Deployment', 'StatefulSet', 'ReplicaSet']);

/** The objects of one app, in file order; namespaces are filled in later by the target. */
export async function renderApp(app: DesiredApp, checkoutDir: string, helm: HelmContext = {}): Promise<KObject[]> {
  const { chartCacheDir, offline, ...helmOptions } = helm;
  if (app.helm?.chart) {
    const ref = app.helm.chart;
    if (!chartCacheDir) throw new TerminalError(`app ${app.name}: the remote chart ${ref.name ?? ref.repo}@${ref.version} needs a chart cache, which this command has not set up`);
    const fetched = await fetchChart(ref, { cacheDir: chartCacheDir, offline });
    const { dir } = await resolveDependencies(fetched.dir, { cacheDir: chartCacheDir, offline });
    const objects = await renderHelm(dir, app, { namespace: 'default', ...helmOptions, checkoutDir, checked: true });
    const chart = `${ref.name ?? ref.repo.split('/').pop()}@${ref.version}`;
    if (objects.length === 0) throw new TerminalError(`app ${app.name}: the chart ${chart} rendered no objects with the values given; check spec.helm.values`);
    return objects.map((o) => traced(applyOverrides(o, app), chart, fetched.digest));
  }
  if (app.manifests) {
    const dir = resolve(checkoutDir, app.artifact.path ?? app.manifests.dir);
    const rel = relative(checkoutDir, dir);
    if (rel.startsWith('..')) throw new TerminalError(`manifests directory ${app.manifests.dir} is outside the repository`);
    if (await isHelmChart(dir)) {
      // Checked where it lies (symlinks inside the repository); dependencies that Chart.lock pins and charts/ lacks
      // are fetched into a copy in the cache, never into the immutable checkout.
      await checkInside(dir, checkoutDir);
      const resolved = chartCacheDir ? (await resolveDependencies(dir, { cacheDir: chartCacheDir, offline, repoRoot: checkoutDir })).dir : dir;
      const objects = await renderHelm(resolved, app, { namespace: 'default', ...helmOptions, checkoutDir, checked: true });
      if (objects.length === 0) throw new TerminalError(`app ${app.name}: the Helm chart ${rel || '.'} rendered no objects with the values given; check its templates and spec.helm.values`);
      return objects.map((o) => applyOverrides(o, app));
    }
    const entries = await readdir(dir).catch(() => [] as string[]);
    const objects =
      isJsonnetDir(entries) && !entries.some((e) => KUSTOMIZATION_FILES.includes(e))
        ? await renderJsonnet(dir, checkoutDir, app.jsonnet)
        : await loadManifests(dir, checkoutDir);
    if (objects.length === 0) throw new TerminalError(await noObjectsMessage(app, dir, rel || '.'));
    return objects.map((o) => applyOverrides(o, app));
  }
  if (app.image) return imageObjects(app);
  throw new TerminalError(`app ${app.name} has neither "image" nor "manifests"; the Kubernetes target needs one of them`);
}

function traced(o: KObject, chart: string, digest: string): KObject {
  return { ...o, metadata: { ...o.metadata, annotations: { ...o.metadata.annotations, [ANNOTATION_HELM_CHART]: chart, [ANNOTATION_HELM_CHART_DIGEST]: digest } } };
}

/** The target-neutral App as a Deployment (+ Service when it has a port). */
export function imageObjects(app: DesiredApp): KObject[] {
  const selector = { 'app.kubernetes.io/name': app.name, 'app.kubernetes.io/instance': `${app.env}-${app.name}` };
  const env = Object.entries(app.vars)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, value]) => ({ name, value }));
  if (app.port !== undefined && !('PORT' in app.vars)) env.push({ name: 'PORT', value: String(app.port) });
  const container: Record<string, unknown> = { name: app.name, image: app.image };
  if (app.command.length) container.command = app.command;
  if (env.length) container.env = env;
  if (app.port !== undefined) container.ports = [{ name: 'http', containerPort: app.port, protocol: 'TCP' }];
  if (app.readiness) container.readinessProbe = toK8sProbe(app.readiness, app.port);
  if (app.liveness) container.livenessProbe = toK8sProbe(app.liveness, app.port);
  const deployment: KObject = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: app.name, labels: { ...selector, 'app.kubernetes.io/version': labelValue(app.version) } },
    spec: {
      replicas: app.replicas,
      selector: { matchLabels: selector },
      progressDeadlineSeconds: app.progressDeadlineSeconds,
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: { labels: { ...selector, 'app.kubernetes.io/version': labelValue(app.version) } },
        spec: { terminationGracePeriodSeconds: app.terminationGracePeriodSeconds, containers: [container] },
      },
    },
  };
  if (app.port === undefined) return [deployment];
  const service: KObject = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: app.name, labels: { ...selector } },
    spec: { selector, ports: [{ name: 'http', port: app.port, targetPort: app.port, protocol: 'TCP' }] },
  };
  return [deployment, service];
}

/** Label values are at most 63 characters of [A-Za-z0-9._-]. */
function labelValue(v: string): string {
  return v.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 63).replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
}

function toK8sProbe(p: Probe, port: number | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {
    initialDelaySeconds: p.initialDelaySeconds,
    periodSeconds: p.periodSeconds,
    timeoutSeconds: p.timeoutSeconds,
    failureThreshold: p.failureThreshold,
    successThreshold: p.successThreshold,
  };
  if (p.http) out.httpGet = { path: p.http.path, port: p.http.port ?? port ?? 80 };
  if (p.tcp) out.tcpSocket = { port: p.tcp.port ?? port ?? 80 };
  if (p.exec) out.exec = { command: p.exec.command };
  return out;
}

/**
 * Plain YAML files below `dir` (recursive, sorted), or `kustomize build` when it holds a kustomization. Files are
 * named relative to `root` (the repository) in messages.
 */
export async function loadManifests(dir: string, root = dir): Promise<KObject[]> {
  const st = await stat(dir).catch(() => undefined);
  const label = relative(root, dir) || '.';
  if (!st?.isDirectory()) throw new TerminalError(`manifests directory ${label} does not exist`);
  const entries = await readdir(dir);
  const kustomization = entries.find((e) => KUSTOMIZATION_FILES.includes(e));
  if (kustomization) return parseManifests(await kustomizeBuild(dir, join(label, kustomization)), `${join(label, kustomization)} (kustomize build)`);
  const files = await yamlFiles(dir);
  const out: KObject[] = [];
  for (const f of files) out.push(...parseManifests(await readFile(f, 'utf8'), relative(root, f)));
  return out;
}

async function yamlFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await yamlFiles(p)));
    // Symlinks are not followed (neither are they when the ops files are loaded): one could lead out of the repository.
    else if (e.isFile() && /\.(ya?ml|json)$/.test(e.name)) out.push(p);
  }
  return out;
}

/** Multi-document YAML → objects; a `List` is flattened; documents without kind (empty, comments) are skipped. */
export function parseManifests(text: string, file: string): KObject[] {
  const out: KObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length) {
      const [line, col] = lineCol(text, doc.errors[0].pos[0]);
      throw new TerminalError(`${file}:${line}:${col}: invalid YAML: ${doc.errors[0].message.split('\n')[0]}`);
    }
    const v = doc.toJS() as unknown;
    if (v === null || v === undefined) continue;
    if (typeof v !== 'object' || Array.isArray(v)) throw new TerminalError(`${file}: a manifest must be a mapping with apiVersion, kind and metadata.name`);
    const o = v as KObject;
    if (o.kind === 'List' || (typeof o.kind === 'string' && o.kind.endsWith('List') && Array.isArray(o.items))) {
      out.push(...((o.items as KObject[]) ?? []));
      continue;
    }
    if (typeof o.apiVersion !== 'string' || typeof o.kind !== 'string' || (typeof o.metadata?.name !== 'string' && !isGeneratedHook(o))) {
      const line = doc.range ? text.slice(0, doc.range[0]).split('\n').length : 1;
      throw new TerminalError(`${file}:${line}: a manifest needs apiVersion, kind and metadata.name`);
    }
    out.push(o);
  }
  return out;
}

/**
 * Hooks (Argo CD's or Helm's annotation) may be named by `metadata.generateName` alone: each run is created anew and
 * the server names it. Every other object needs `metadata.name`.
 */
function isGeneratedHook(o: KObject): boolean {
  const m = o.metadata as KObject['metadata'] | undefined;
  if (typeof m?.generateName !== 'string' || m.generateName === '' || m.name !== undefined) return false;
  const a = m.annotations ?? {};
  return typeof a['argocd.argoproj.io/hook'] === 'string' || typeof a['helm.sh/hook'] === 'string';
}

function lineCol(text: string, offset: number): [number, number] {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return [line, offset - before.lastIndexOf('\n')];
}

/** `kustomize build`, else `kubectl kustomize`; argv, never a shell. `label` names the kustomization in errors. */
async function kustomizeBuild(dir: string, label: string): Promise<string> {
  const tools: [string, string[]][] = [
    ['kustomize', ['build', dir]],
    ['kubectl', ['kustomize', dir]],
  ];
  for (const [cmd, args] of tools) {
    try {
      const { stdout } = await renders.run(() => run(cmd, args, { maxBuffer: 256 * 1024 * 1024 }));
      return stdout;
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stderr?: string };
      if (e.code === 'ENOENT') continue;
      throw new TerminalError(`${label}: ${cmd} ${args[0]} failed: ${(e.stderr ?? e.message).trim()}`);
    }
  }
  throw new TerminalError(`${label}: a kustomization, but neither "kustomize" nor "kubectl" is on PATH; install one of them (kubectl kustomize is built in)`);
}

/** Environment overrides on manifests: version → tag of `app.image`, explicit replicas, env variables. */
export function applyOverrides(o: KObject, app: DesiredApp): KObject {
  if (!WORKLOADS.has(o.kind)) return o;
  const out = structuredClone(o) as KObject & { spec?: Record<string, any> };
  if (app.manifests?.replicas && SCALABLE.has(o.kind) && out.spec) out.spec.replicas = app.replicas;
  const podSpec = o.kind === 'CronJob' ? out.spec?.jobTemplate?.spec?.template?.spec : out.spec?.template?.spec;
  if (!podSpec) return out;
  const vars = Object.entries(app.vars);
  for (const c of [...(podSpec.initContainers ?? []), ...(podSpec.containers ?? [])]) {
    if (app.image && typeof c.image === 'string') c.image = retag(c.image, app.image, app.version);
    if (vars.length) {
      const env: { name: string; value?: string }[] = c.env ?? [];
      for (const [name, value] of vars) {
        const existing = env.find((e) => e.name === name);
        if (existing) {
          existing.value = value;
          delete (existing as Record<string, unknown>).valueFrom;
        } else env.push({ name, value });
      }
      c.env = env;
    }
  }
  return out;
}

/** `nginx:1.0` with image `nginx` and version `1.1` → `nginx:1.1`; other images are left alone. */
export function retag(current: string, image: string, version: string): string {
  const repo = repoOf(image);
  // An `image` with a tag (from {version}) is used as is; a bare repository gets the version as its tag.
  const wanted = repo === image ? `${image}:${version}` : image;
  return repoOf(current) === repo ? wanted : current;
}

function repoOf(ref: string): string {
  const noDigest = ref.split('@')[0];
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}
