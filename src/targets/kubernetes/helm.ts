/**
 * Helm charts on the Kubernetes target: a `manifests` directory holding a Chart.yaml is rendered by the real Helm
 * (v4) CLI, `helm template`, argv only. Helm runs with its own empty config, cache and data directories (the user's
 * ~/.config/helm is neither read nor written) and without Keelson's secrets in its environment. What the install
 * does beyond rendering — hooks, tests, install vs upgrade — is Keelson's (helm-hooks.ts), as in Argo CD.
 *
 * With a cluster, `.Capabilities` is the cluster's (version and served API versions from Keelson's discovery) and
 * `lookup` reads live objects (`--dry-run=server` with the environment's kubeconfig; read-only). Without one (offline
 * validation), Helm's defaults stand and `lookup` returns nothing, as in plain `helm template`.
 */
import { execFile, execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync } from 'node:fs';
import { mkdtemp, readdir, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join, relative } from 'node:path';
import type { DesiredApp, HelmSpec } from '../../core/model.js';
import { TerminalError, TransientError } from '../../core/errors.js';
import type { KubeClient } from './client.js';
import type { KObject } from './objects.js';
import { renders } from './limit.js';
import { parseManifests } from './render.js';

export interface HelmCapabilities {
  /** e.g. `v1.36.3`. */
  kubeVersion: string;
  /** Served group versions, e.g. `v1`, `apps/v1`, `networking.k8s.io/v1`. */
  apiVersions: string[];
}

/** The environment's own cluster, for `lookup`: its kubeconfig file(s) and context; in-cluster when neither. */
export interface HelmLookup {
  kubeconfig?: string;
  context?: string;
  /** The user Helm's requests impersonate (the engine policy's service account), as Keelson's own requests do. */
  asUser?: string;
}

export interface HelmRenderOptions {
  namespace: string;
  /** Repository checkout the values files are read from (their paths are repository paths). */
  checkoutDir: string;
  capabilities?: HelmCapabilities;
  lookup?: HelmLookup;
  /** `.Release.IsUpgrade` when false (the app is already deployed here). Default true (install). */
  install?: boolean;
  /** The chart directory was checked by the caller (inside the repository) or fetched and verified into the cache. */
  checked?: boolean;
}

const UNSERVED_KIND = /no matches for kind|resource mapping not found|ensure CRDs are installed first/i;

const INSTALL_HINT =
  'install Helm v4 (https://helm.sh/docs/intro/install/, or `go install helm.sh/helm/v4/cmd/helm@latest`) and put "helm" on PATH, or set KEELSON_HELM_BIN to its path';

export function helmBinary(env: NodeJS.ProcessEnv = process.env): string {
  return env.KEELSON_HELM_BIN || 'helm';
}

/** Why Helm cannot run here (for tests and diagnostics); undefined when `helm version` answers. */
export function helmUnavailable(env: NodeJS.ProcessEnv = process.env): string | undefined {
  try {
    execFileSync(helmBinary(env), ['version', '--short'], { stdio: 'ignore', timeout: 30_000 });
    return undefined;
  } catch {
    return `Helm v4 is not available as "${helmBinary(env)}"; ${INSTALL_HINT} (scripts/tools.sh builds it for the tests)`;
  }
}

/** Whether `dir` is a Helm chart (it holds a Chart.yaml), as Argo CD detects one. */
export async function isHelmChart(dir: string): Promise<boolean> {
  return (await stat(join(dir, 'Chart.yaml')).catch(() => undefined))?.isFile() ?? false;
}

/** The settings of a chart app without `spec.helm`: release = app name, no values. */
export function helmSpecOf(app: DesiredApp): HelmSpec {
  return app.helm ?? { releaseName: app.name, values: {}, valuesFiles: [] };
}

/**
 * The environment Helm runs in: Keelson's own variables and secrets (KEELSON_*, SOPS_*), the user's Helm settings
 * (HELM_*) and kubeconfig are left out; Helm's homes are `home`. A cluster is reachable only through `lookup`.
 */
export function helmEnv(home: string, lookup: HelmLookup | undefined, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined || /^(KEELSON_|SOPS_|HELM_)/.test(k) || k === 'KUBECONFIG') continue;
    out[k] = v;
  }
  out.HELM_CONFIG_HOME = join(home, 'config');
  out.HELM_CACHE_HOME = join(home, 'cache');
  out.HELM_DATA_HOME = join(home, 'data');
  out.HELM_CONTENT_CACHE = join(home, 'cache', 'content');
  // The cluster's discovery, cached between renders: Keelson's own directory, not the user's ~/.kube/cache.
  out.KUBECACHEDIR = kubeCacheDir();
  if (lookup?.kubeconfig) out.KUBECONFIG = lookup.kubeconfig;
  return out;
}

let kubeCache: string | undefined;

/**
 * Where Helm's Kubernetes client caches discovery in server mode: one directory per user, only this user's (a
 * directory of that name someone else made, or others may write, is not used: a fresh one of this process is).
 */
export function kubeCacheDir(): string {
  if (kubeCache) return kubeCache;
  const dir = join(tmpdir(), `keelson-helm-kube-cache-${process.getuid?.() ?? 'user'}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  const own = st.isDirectory() && (process.getuid === undefined || st.uid === process.getuid()) && (st.mode & 0o077) === 0;
  kubeCache = own ? dir : mkdtempSync(join(tmpdir(), 'keelson-helm-kube-cache-'));
  return kubeCache;
}

/** The `helm template` argv (after the binary) for a chart directory and the values files given. */
export function helmTemplateArgs(chartDir: string, helm: HelmSpec, o: { namespace: string; valuesFiles: string[]; capabilities?: HelmCapabilities; lookup?: HelmLookup; install: boolean }): string[] {
  const args = ['template', helm.releaseName, chartDir, '--namespace', o.namespace, '--include-crds', '--color', 'never'];
  for (const f of o.valuesFiles) args.push('--values', f);
  if (!o.install) args.push('--is-upgrade');
  if (o.capabilities) {
    args.push('--kube-version', o.capabilities.kubeVersion);
    if (o.capabilities.apiVersions.length) args.push('--api-versions', o.capabilities.apiVersions.join(','));
  }
  if (o.lookup) {
    // Server mode only reads: discovery, and a GET per object (`--take-ownership` turns Helm's "already exists"
    // install check into that; the objects are Keelson's, not a Helm release's). Schema validation is the apply's.
    args.push('--dry-run=server', '--take-ownership', '--disable-openapi-validation');
    if (o.lookup.context) args.push('--kube-context', o.lookup.context);
    if (o.lookup.asUser) args.push('--kube-as-user', o.lookup.asUser);
  }
  return args;
}

/** The chart's objects as `helm template` renders them, hooks and tests included (helm-hooks.ts sorts them out). */
export async function renderHelm(chartDir: string, app: DesiredApp, o: HelmRenderOptions): Promise<KObject[]> {
  const helm = helmSpecOf(app);
  if (!o.checked) await checkInside(chartDir, o.checkoutDir);
  const home = await mkdtemp(join(tmpdir(), 'keelson-helm-'));
  try {
    const valuesFiles = helm.valuesFiles.map((f) => join(o.checkoutDir, f));
    for (const f of valuesFiles) {
      if (!(await stat(f).catch(() => undefined))?.isFile()) throw new TerminalError(`Helm chart ${relative(o.checkoutDir, chartDir) || '.'}: values file ${relative(o.checkoutDir, f)} does not exist`);
    }
    if (Object.keys(helm.values).length) {
      const inline = join(home, 'values.json'); // JSON is YAML; applied after the files, so it wins
      await writeFile(inline, JSON.stringify(helm.values), { mode: 0o600 });
      valuesFiles.push(inline);
    }
    const render = (lookup: HelmLookup | undefined) => {
      const args = helmTemplateArgs(chartDir, helm, { namespace: o.namespace, valuesFiles, capabilities: o.capabilities, lookup, install: o.install ?? true });
      return runHelm(args, helmEnv(home, lookup), chartDir);
    };
    // Server mode costs a cluster round trip per object; only a chart whose templates call `lookup` needs it.
    const lookup = o.lookup && (await usesLookup(chartDir)) ? o.lookup : undefined;
    let stdout: string;
    try {
      stdout = await render(lookup);
    } catch (err) {
      // Server mode maps every rendered object to a served kind: custom resources whose CRD comes with this very
      // chart are not served yet. Render them without lookup then (as plain `helm template` would).
      if (!lookup || !(err instanceof TerminalError) || !UNSERVED_KIND.test(err.message)) throw err;
      stdout = await render(undefined);
    }
    return parseHelmOutput(stdout);
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

const lookupMemo = new Map<string, Promise<boolean>>();

/**
 * Whether a template of the chart (or of a sub-chart) may call `lookup`. Chart directories are immutable (a commit's
 * checkout, or a content-addressed cache entry), so the answer is kept per directory. A packaged sub-chart (`.tgz`)
 * is not opened: it counts as a caller.
 */
export function usesLookup(chartDir: string): Promise<boolean> {
  let p = lookupMemo.get(chartDir);
  if (!p) {
    p = scanForLookup(chartDir).catch(() => true);
    lookupMemo.set(chartDir, p);
  }
  return p;
}

async function scanForLookup(dir: string): Promise<boolean> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (await scanForLookup(p)) return true;
    } else if (e.name.endsWith('.tgz')) return true;
    else if (/\.(ya?ml|tpl|txt|json)$/.test(e.name) && /\blookup\b/.test(await readFile(p, 'utf8'))) return true;
  }
  return false;
}

/**
 * Helm follows symlinks when it loads a chart directory (and `.Files.Get` reads what they point at): the chart and
 * every symlink in it must resolve inside the repository.
 */
export async function checkInside(chartDir: string, checkoutDir: string): Promise<void> {
  const top = await realpath(checkoutDir);
  const inside = (p: string) => {
    const rel = relative(top, p);
    return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
  };
  const name = (p: string) => relative(checkoutDir, p) || '.';
  const seen = new Set<string>();
  const walk = async (dir: string): Promise<void> => {
    const real = await realpath(dir);
    if (seen.has(real)) return; // a symlink loop, or a directory reached twice
    seen.add(real);
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isSymbolicLink()) {
        const target = await realpath(p).catch(() => undefined);
        if (!target) continue; // dangling: Helm fails on it by itself
        if (!inside(target)) throw new TerminalError(`Helm chart ${name(chartDir)}: ${name(p)} is a symlink to ${target}, outside the repository; keep everything a chart reads inside the repository`);
        if ((await stat(p)).isDirectory()) await walk(p);
      } else if (e.isDirectory()) await walk(p);
    }
  };
  const real = await realpath(chartDir).catch(() => chartDir);
  if (!inside(real)) throw new TerminalError(`Helm chart ${name(chartDir)} resolves to ${real}, outside the repository`);
  await walk(chartDir);
}

function runHelm(args: string[], env: NodeJS.ProcessEnv, chartDir: string): Promise<string> {
  const bin = helmBinary();
  return renders.run(() => new Promise((resolve, reject) => {
    execFile(bin, args, { env, maxBuffer: 256 * 1024 * 1024, timeout: 120_000 }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const e = err as NodeJS.ErrnoException & { killed?: boolean };
      if (e.code === 'ENOENT') return reject(new TerminalError(`${chartDir} is a Helm chart (it holds a Chart.yaml), but the Helm binary "${bin}" was not found; ${INSTALL_HINT}`));
      const message = helmMessage(stderr) || e.message;
      if (e.killed) return reject(new TransientError(`helm template did not finish within 120s: ${message}`));
      if (/cluster unreachable|connection refused|i\/o timeout|no route to host|TLS handshake timeout|ServiceUnavailable|the server is currently unable/i.test(message)) {
        return reject(new TransientError(`helm template could not reach the cluster: ${message}`));
      }
      reject(new TerminalError(`helm template failed: ${message}`));
    });
  }));
}

/** Helm's error without its `Error: ` prefix and debug noise; it names the template file and line itself. */
export function helmMessage(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !/^(WARNING|walk\.go|level=|Use --debug flag)/.test(l));
  return lines.map((l) => l.replace(/^Error: /, '')).join('; ');
}

/** `helm template` output → objects, each document's errors named by its `# Source:` template. */
export function parseHelmOutput(text: string): KObject[] {
  const out: KObject[] = [];
  for (const chunk of text.split(/^---[ \t]*$/m)) {
    if (!chunk.trim()) continue;
    const source = /^# Source: (.+)$/m.exec(chunk)?.[1]?.trim() ?? 'helm template output';
    out.push(...parseManifests(chunk, source));
  }
  return out;
}

// ---- the cluster's capabilities, from Keelson's own discovery -----------------------------------------------

const CAPABILITIES_TTL_MS = 5 * 60_000;
const capabilitiesCache = new WeakMap<KubeClient, { at: number; value: Promise<HelmCapabilities> }>();

/** The cluster's version and served group versions; cached per cluster client for a few minutes (new CRDs show up). */
export function clusterCapabilities(api: KubeClient, now = Date.now()): Promise<HelmCapabilities> {
  const cached = capabilitiesCache.get(api);
  if (cached && now - cached.at < CAPABILITIES_TTL_MS) return cached.value;
  const value = discover(api);
  capabilitiesCache.set(api, { at: now, value });
  value.catch(() => capabilitiesCache.delete(api));
  return value;
}

async function discover(api: KubeClient): Promise<HelmCapabilities> {
  const [version, core, groups] = await Promise.all([
    api.request<{ gitVersion?: string }>('GET', '/version'),
    api.request<{ versions?: string[] }>('GET', '/api'),
    api.request<{ groups?: { versions?: { groupVersion: string }[] }[] }>('GET', '/apis'),
  ]);
  const apiVersions = [...(core.versions ?? []), ...(groups.groups ?? []).flatMap((g) => (g.versions ?? []).map((v) => v.groupVersion))];
  // Helm wants a semantic version; a distribution's suffix (`v1.30.2-eks-1234`) is kept, build metadata dropped.
  const kubeVersion = (version.gitVersion ?? '').replace(/\+.*$/, '');
  return { kubeVersion: /^v?\d+\.\d+/.test(kubeVersion) ? kubeVersion : 'v1.30.0', apiVersions: [...new Set(apiVersions)].sort() };
}
