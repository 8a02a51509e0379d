/** fetchChart: one remote chart by version, through the chart cache (see chart-source.ts). */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import semver from 'semver';
import { parse as parseYaml } from 'yaml';
import { TerminalError } from '../../core/errors.js';
import { ChartCache } from './chart-cache.js';
import { displayUrl } from './chart-http.js';
import { pullHttpChart, repositoryBase } from './chart-index.js';
import { parseOciUrl, pullOciChart } from './chart-oci.js';

export interface ChartRef {
  /** An http(s) chart repository URL (then `name` is required) or `oci://registry/path/to/chart` (then no `name`). */
  repo: string;
  name?: string;
  version: string;
  /**
   * `sha256:<hex>` pin: the package's sha256 for an HTTP repository (as in its index.yaml), the manifest digest for
   * OCI (as `helm push` prints it).
   */
  digest?: string;
}

export interface FetchChartOptions {
  /** The cache root; the engine passes `<state>/charts`. */
  cacheDir: string;
  signal?: AbortSignal;
  /** Only the cache: a chart that is not there is a ChartNotCachedError. */
  offline?: boolean;
  /** Deadline of each request; default 5 minutes. */
  timeoutMs?: number;
  /** Largest chart package accepted; default 100 MiB. */
  maxBytes?: number;
}

export interface FetchedChart {
  /** The unpacked chart, shared in the cache: read it, never write into it. */
  dir: string;
  /** What a pin is compared with (see ChartRef.digest); record it with the release. */
  digest: string;
  /** sha256 of the package (.tgz); equal to `digest` for HTTP repositories. */
  packageDigest: string;
}

/** Offline, a chart (or dependency) is not in the cache; `missing` names each as `source version`. */
export class ChartNotCachedError extends TerminalError {
  constructor(readonly missing: string[]) {
    super(
      `not in the chart cache (offline): ${missing.join('; ')}; a sync with network access fetches ${missing.length === 1 ? 'it' : 'them'}`,
    );
    this.name = 'ChartNotCachedError';
  }
}

interface Source {
  kind: 'http' | 'oci';
  /** For messages and the cache record: `https://charts.example.com/web` or `oci://…/web`. */
  display: string;
  /** Cache key of (source, version). */
  key: string;
  name: string;
  version: string;
  pin?: string;
}

function describeSource(ref: ChartRef): Source {
  if (typeof ref.version !== 'string' || ref.version.trim() === '') {
    throw new TerminalError(`chart ${displayUrl(ref.repo)}: version is required (charts are pinned by version)`);
  }
  const version = ref.version.trim();
  let pin: string | undefined;
  if (ref.digest !== undefined) {
    pin = ref.digest.trim().toLowerCase();
    if (!/^sha256:[0-9a-f]{64}$/.test(pin)) {
      throw new TerminalError(`chart ${displayUrl(ref.repo)}: digest must be sha256:<64 hex digits>, got ${JSON.stringify(ref.digest)}`);
    }
  }
  if (ref.repo.startsWith('oci://')) {
    if (ref.name !== undefined) {
      throw new TerminalError(`chart ${ref.repo}: name is part of an oci:// URL (oci://registry/path/${ref.name}); leave name out`);
    }
    const { base, repository, name } = parseOciUrl(ref.repo);
    const display = `oci://${base.host}/${repository}`;
    return { kind: 'oci', display, key: `oci ${display} ${version}`, name, version, pin };
  }
  if (!ref.name) throw new TerminalError(`chart repository ${displayUrl(ref.repo)}: name is required (the chart's name in the repository)`);
  const base = repositoryBase(ref.repo);
  const display = `${base.href.replace(/\/$/, '')}/${ref.name}`;
  return { kind: 'http', display, key: `http ${base.href} ${ref.name} ${version}`, name: ref.name, version, pin };
}

/**
 * The unpacked chart of `ref`, from the cache or downloaded, verified (the index's digest, the pin, the chart's own
 * name and version) and cached by content. Never returns a package whose digest differs from the pin.
 */
export async function fetchChart(ref: ChartRef, opts: FetchChartOptions): Promise<FetchedChart> {
  const src = describeSource(ref);
  const cache = new ChartCache(opts.cacheDir);
  const what = `chart ${src.display} version ${src.version}`;

  const cached = await cache.readRef(src.key);
  if (cached && (!src.pin || cached.digest === src.pin) && (await cache.hasPackage(cached.packageDigest))) {
    return { dir: await cache.unpacked(cached.packageDigest), digest: cached.digest, packageDigest: cached.packageDigest };
  }
  if (opts.offline) throw new ChartNotCachedError([`${src.display} ${src.version}`]);

  const wrongDigest = (actual: string) =>
    new TerminalError(
      `${what}: wrong digest: expected ${src.pin}, got ${actual}; refused. If the chart was republished on purpose, ` +
        'update the digest in spec.helm.chart',
    );
  const timeoutMs = opts.timeoutMs ?? 5 * 60_000;
  const maxBytes = opts.maxBytes ?? 100 * 1024 ** 2;
  let digest: string;
  let packageDigest: string;
  let body: Buffer;
  if (src.kind === 'oci') {
    const pulled = await pullOciChart({ url: src.display, version: src.version }, { signal: opts.signal, timeoutMs, maxBytes, expectManifestDigest: src.pin, onWrongDigest: wrongDigest });
    ({ manifestDigest: digest, packageDigest, body } = pulled);
  } else {
    ({ packageDigest, body } = await pullHttpChart({ repo: ref.repo, name: src.name, version: src.version }, { signal: opts.signal, timeoutMs, maxBytes }));
    digest = packageDigest;
  }
  if (src.pin && src.pin !== digest) throw wrongDigest(digest);

  await cache.putPackage(packageDigest, body);
  const dir = await cache.unpacked(packageDigest);
  await checkChartIdentity(dir, src, what);
  await cache.writeRef(src.key, { source: src.display, version: src.version, digest, packageDigest });
  return { dir, digest, packageDigest };
}

/** The package must hold the chart that was asked for (an index or tag pointing elsewhere is refused). */
async function checkChartIdentity(dir: string, src: Source, what: string): Promise<void> {
  let chart: { name?: unknown; version?: unknown };
  try {
    chart = parseYaml(await readFile(path.join(dir, 'Chart.yaml'), 'utf8')) ?? {};
  } catch {
    throw new TerminalError(`${what}: the package has no readable Chart.yaml; not a Helm chart`);
  }
  const version = String(chart.version);
  const sameVersion = version === src.version || (semver.valid(version, { loose: true }) !== null && semver.valid(version, { loose: true }) === semver.valid(src.version, { loose: true }));
  if (chart.name !== src.name || !sameVersion) {
    throw new TerminalError(`${what}: the package holds chart ${String(chart.name)} version ${version}; refused`);
  }
}
