/**
 * Helm charts from an HTTP chart repository, as `helm repo index` writes one: `index.yaml` lists each chart's
 * versions with package URLs (relative ones resolve against the repository URL) and the package's sha256.
 */
import { createHash } from 'node:crypto';
import semver from 'semver';
import { parse as parseYaml } from 'yaml';
import { TerminalError, errorMessage } from '../../core/errors.js';
import { displayUrl, httpGet, parseRemoteUrl, statusError } from './chart-http.js';

export interface HttpChartRef {
  repo: string;
  name: string;
  version: string;
}

export interface PulledHttpChart {
  /** `sha256:…` of the package (.tgz). */
  packageDigest: string;
  body: Buffer;
}

export interface PullHttpOptions {
  signal?: AbortSignal;
  timeoutMs: number;
  maxBytes: number;
}

interface IndexVersion {
  version?: unknown;
  urls?: unknown;
  digest?: unknown;
}

/** The repository URL with a trailing slash, so that `index.yaml` and relative package URLs resolve below it. */
export function repositoryBase(repo: string): URL {
  const url = parseRemoteUrl(repo, 'chart repository');
  if (url.search || url.hash) throw new TerminalError(`chart repository ${displayUrl(url)}: a query or fragment is not allowed`);
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url;
}

export async function pullHttpChart(ref: HttpChartRef, o: PullHttpOptions): Promise<PulledHttpChart> {
  const base = repositoryBase(ref.repo);
  const repoText = displayUrl(base);
  const what = `chart ${ref.name} version ${ref.version} from ${repoText}`;

  const indexRes = await httpGet(new URL('index.yaml', base), { what: `chart repository ${repoText}: index.yaml`, signal: o.signal, timeoutMs: o.timeoutMs, maxBytes: 256 * 1024 ** 2 });
  if (indexRes.status === 404) throw new TerminalError(`${repoText} is not a chart repository: index.yaml: HTTP 404`);
  if (indexRes.status !== 200) throw statusError(`chart repository ${repoText}: index.yaml`, indexRes.status);
  let index: { entries?: Record<string, IndexVersion[] | undefined> };
  try {
    index = parseYaml(indexRes.body.toString('utf8'), { maxAliasCount: 1000 }) ?? {};
  } catch (err) {
    throw new TerminalError(`chart repository ${repoText}: index.yaml does not parse: ${errorMessage(err)}`);
  }
  const entries = index.entries && typeof index.entries === 'object' ? index.entries : {};
  const versions = Array.isArray(entries[ref.name]) ? entries[ref.name]! : undefined;
  if (!versions) {
    const names = Object.keys(entries).sort();
    throw new TerminalError(
      `chart ${ref.name} not found in ${repoText}; charts there: ${names.length ? names.slice(0, 30).join(', ') + (names.length > 30 ? ', …' : '') : 'none'}`,
    );
  }
  const entry = versions.find((v) => String(v.version) === ref.version) ?? versions.find((v) => sameVersion(String(v.version), ref.version));
  if (!entry) {
    throw new TerminalError(`chart ${ref.name} version ${ref.version} not found in ${repoText}; available: ${listVersions(versions.map((v) => String(v.version)))}`);
  }
  const first = Array.isArray(entry.urls) ? entry.urls.find((u): u is string => typeof u === 'string') : undefined;
  if (!first) throw new TerminalError(`${what}: index.yaml lists no package URL for it`);
  let packageUrl: URL;
  try {
    packageUrl = parseRemoteUrl(new URL(first, base).href, `${what}: package URL`);
  } catch (err) {
    throw err instanceof TerminalError ? err : new TerminalError(`${what}: bad package URL in index.yaml`);
  }

  const pkg = await httpGet(packageUrl, { what: `${what}: package ${displayUrl(packageUrl)}`, signal: o.signal, timeoutMs: o.timeoutMs, maxBytes: o.maxBytes });
  if (pkg.status === 404) throw new TerminalError(`${what}: index.yaml lists ${displayUrl(packageUrl)}, which answers HTTP 404`);
  if (pkg.status !== 200) throw statusError(`${what}: package ${displayUrl(packageUrl)}`, pkg.status);
  const packageDigest = `sha256:${createHash('sha256').update(pkg.body).digest('hex')}`;
  const listed = typeof entry.digest === 'string' ? entry.digest.toLowerCase().replace(/^sha256:/, '') : undefined;
  if (listed && `sha256:${listed}` !== packageDigest) {
    throw new TerminalError(`${what}: wrong digest: index.yaml says sha256:${listed}, the package is ${packageDigest}; refused`);
  }
  return { packageDigest, body: pkg.body };
}

function sameVersion(a: string, b: string): boolean {
  const va = semver.valid(a, { loose: true });
  const vb = semver.valid(b, { loose: true });
  return va !== null && va === vb;
}

/** At most 20 versions, highest first (semver order where they parse). */
export function listVersions(versions: string[]): string {
  const sorted = [...new Set(versions)].sort((a, b) => compareVersions(b, a));
  if (sorted.length === 0) return 'none';
  return sorted.slice(0, 20).join(', ') + (sorted.length > 20 ? `, … (${sorted.length - 20} more)` : '');
}

function compareVersions(a: string, b: string): number {
  const va = semver.valid(a, { loose: true });
  const vb = semver.valid(b, { loose: true });
  if (va && vb) return semver.compare(va, vb, { loose: true });
  if (va) return 1;
  if (vb) return -1;
  return a.localeCompare(b);
}
