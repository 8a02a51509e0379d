/**
 * Chart dependencies (`dependencies:` in Chart.yaml), placed in `charts/` at the versions Chart.lock pins, the way
 * `helm dependency build` does, but through Keelson's chart cache and without writing into the ops checkout: the
 * chart is copied to `<cache>/resolved/<hash>/` (keyed by the chart's content and its dependencies' digests, so
 * the same commit resolves to the same directory, once) and that copy is what helm renders.
 *
 * Dependencies already in `charts/` (vendored, as a directory or `<name>-<version>.tgz`) are used as they are.
 * Repositories: http(s) chart repositories, `oci://registry/path` (the chart is `oci://registry/path/<name>`), and
 * `file://<path>` to a chart directory inside the repository. Helm's repository names (`@stable`, `alias:stable`)
 * are refused: Keelson has no local repository list.
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, readdir, realpath, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import semver from 'semver';
import { LineCounter, parse as parseYaml, parseDocument, type Document } from 'yaml';
import { TerminalError, ValidationError } from '../../core/errors.js';
import type { Issue } from '../../core/types.js';
import { issueAt, type PathSegment } from '../../render/positions.js';
import { ChartCache, isDir } from './chart-cache.js';
import { ChartNotCachedError, fetchChart, type FetchedChart } from './chart-fetch.js';

export interface ResolveDependenciesOptions {
  cacheDir: string;
  /** Only the cache: dependencies that are not there are named in one ChartNotCachedError. */
  offline?: boolean;
  signal?: AbortSignal;
  /**
   * The repository checkout: `file://` dependencies and symlinks must resolve inside it, and messages name files
   * relative to it. Default: the chart directory itself.
   */
  repoRoot?: string;
  timeoutMs?: number;
}

export interface ResolvedDependency {
  name: string;
  version: string;
  repository: string;
  /** `vendored`: already in charts/; `remote`: fetched (or cached) package; `file`: a chart directory in the repository. */
  from: 'vendored' | 'remote' | 'file';
  /** For remote dependencies: the digest as fetchChart reports it. */
  digest?: string;
}

export interface ResolvedChart {
  /** The chart directory to render: `chartDir` itself when nothing had to be added, else the resolved copy in the cache. */
  dir: string;
  dependencies: ResolvedDependency[];
}

interface DependencySpec {
  name: string;
  version: string;
  repository: string;
  /** Position in Chart.yaml's `dependencies` list. */
  index: number;
}

interface LockEntry {
  name: string;
  version: string;
  repository: string;
}

const MAX_DEPTH = 8;

export async function resolveDependencies(chartDir: string, opts: ResolveDependenciesOptions): Promise<ResolvedChart> {
  const root = await realpath(opts.repoRoot ?? chartDir);
  return resolveAt(await realpath(chartDir), { ...opts, root }, 0);
}

interface Context extends ResolveDependenciesOptions {
  root: string;
}

async function resolveAt(chartDir: string, ctx: Context, depth: number): Promise<ResolvedChart> {
  const chartFile = await readYaml(path.join(chartDir, 'Chart.yaml'), ctx.root);
  if (!chartFile) throw new TerminalError(`${displayPath(path.join(chartDir, 'Chart.yaml'), ctx.root)}: not found; not a Helm chart`);
  const issues: Issue[] = [];
  const specs = dependencySpecs(chartFile, issues);
  if (issues.length) throw new ValidationError(issues);
  if (specs.length === 0) return { dir: chartDir, dependencies: [] };

  const vendored = await vendoredCharts(path.join(chartDir, 'charts'));
  const missing = specs.filter((d) => !vendored.has(d.name));
  const resolved: ResolvedDependency[] = specs
    .filter((d) => vendored.has(d.name))
    .map((d) => ({ name: d.name, version: vendored.get(d.name)!, repository: d.repository, from: 'vendored' }));
  if (missing.length === 0) return { dir: chartDir, dependencies: resolved };

  const lockPath = path.join(chartDir, 'Chart.lock');
  const lockFile = await readYaml(lockPath, ctx.root);
  if (!lockFile) {
    throw new ValidationError([
      issueAt(chartFile, ['dependencies'], `${missing.map((d) => d.name).join(', ')} not in charts/ and there is no Chart.lock to pin ${missing.length === 1 ? 'its version' : 'their versions'}: run \`helm dependency update\` and commit Chart.lock`, 'key'),
    ]);
  }
  const lock = lockEntries(lockFile);

  const fetched: { spec: DependencySpec; locked: LockEntry; chart?: FetchedChart; fileDir?: string }[] = [];
  const notCached: string[] = [];
  for (const spec of missing) {
    const at = (field: PathSegment[], message: string) => issues.push(issueAt(chartFile, ['dependencies', spec.index, ...field], message));
    const locked = lock.find((l) => l.name === spec.name && sameRepository(l.repository, spec.repository));
    if (!locked) {
      at([], `dependency ${spec.name} (${spec.repository || 'no repository'}) is not in Chart.lock: run \`helm dependency update\` and commit Chart.lock`);
      continue;
    }
    if (!satisfies(locked.version, spec.version)) {
      at(['version'], `Chart.lock pins ${spec.name} at ${locked.version}, which is not ${spec.version}: run \`helm dependency update\` and commit Chart.lock`);
      continue;
    }
    const repo = spec.repository;
    if (/^https?:\/\//.test(repo) || repo.startsWith('oci://')) {
      const ref = repo.startsWith('oci://') ? { repo: `${repo.replace(/\/+$/, '')}/${spec.name}`, version: locked.version } : { repo, name: spec.name, version: locked.version };
      try {
        fetched.push({ spec, locked, chart: await fetchChart(ref, { cacheDir: ctx.cacheDir, offline: ctx.offline, signal: ctx.signal, timeoutMs: ctx.timeoutMs }) });
      } catch (err) {
        if (err instanceof ChartNotCachedError) notCached.push(...err.missing);
        else if (err instanceof TerminalError) at(['repository'], `dependency ${spec.name}: ${err.message}`);
        else throw err;
      }
    } else if (repo.startsWith('file://')) {
      const target = path.resolve(chartDir, repo.slice('file://'.length));
      const real = await realpath(target).catch(() => undefined);
      if (!real || !(await isDir(real))) at(['repository'], `dependency ${spec.name}: ${repo} is not a directory`);
      else if (!inside(real, ctx.root)) at(['repository'], `dependency ${spec.name}: ${repo} leaves the repository`);
      else if (depth >= MAX_DEPTH) at(['repository'], `dependency ${spec.name}: file:// dependencies nest deeper than ${MAX_DEPTH} (a cycle?)`);
      else fetched.push({ spec, locked, fileDir: (await resolveAt(real, ctx, depth + 1)).dir });
    } else if (repo.startsWith('@') || repo.startsWith('alias:')) {
      at(['repository'], `dependency ${spec.name}: ${repo} names a repository in Helm's local repository list, which Keelson does not use; write the repository URL`);
    } else {
      at(['repository'], `dependency ${spec.name}: not in charts/ and no repository to fetch it from (https://…, oci://… or file://…)`);
    }
  }
  if (issues.length) throw new ValidationError(issues);
  if (notCached.length) throw new ChartNotCachedError(notCached);

  const cache = new ChartCache(ctx.cacheDir);
  const keyParts = [`chart ${await treeHash(chartDir, ctx.root)}`];
  for (const f of fetched) {
    keyParts.push(`${f.spec.name} ${f.chart ? f.chart.packageDigest : `file ${await treeHash(f.fileDir!, ctx.root)}`}`);
    resolved.push({ name: f.spec.name, version: f.locked.version, repository: f.spec.repository, from: f.chart ? 'remote' : 'file', ...(f.chart ? { digest: f.chart.digest } : {}) });
  }
  const dest = cache.resolvedPath(createHash('sha256').update(keyParts.join('\n')).digest('hex'));
  if (await isDir(dest)) return { dir: dest, dependencies: resolved };

  const tmp = await cache.tempDir();
  try {
    await copyTree(chartDir, tmp, ctx.root);
    await mkdir(path.join(tmp, 'charts'), { recursive: true, mode: 0o700 });
    for (const f of fetched) {
      if (f.chart) await copyFile(cache.packagePath(f.chart.packageDigest), path.join(tmp, 'charts', `${f.spec.name}-${f.locked.version}.tgz`));
      else await copyTree(f.fileDir!, path.join(tmp, 'charts', f.spec.name), f.fileDir!.startsWith(cache.root) ? f.fileDir! : ctx.root);
    }
    await cache.publishDir(tmp, dest);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return { dir: dest, dependencies: resolved };
}

interface YamlFile {
  file: string;
  index: number;
  doc: Document.Parsed;
  lineCounter: LineCounter;
}

async function readYaml(file: string, root: string): Promise<YamlFile | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter });
  const yf = { file: displayPath(file, root), index: 0, doc, lineCounter };
  if (doc.errors.length) {
    const e = doc.errors[0];
    const { line, col } = lineCounter.linePos(e.pos[0]);
    throw new ValidationError([{ file: yf.file, line, col, message: `does not parse: ${e.message.split('\n')[0]}` }]);
  }
  return yf;
}

function dependencySpecs(chart: YamlFile, issues: Issue[]): DependencySpec[] {
  const deps = (chart.doc.toJS() as { dependencies?: unknown } | null)?.dependencies;
  if (deps === undefined || deps === null) return [];
  if (!Array.isArray(deps)) {
    issues.push(issueAt(chart, ['dependencies'], 'dependencies must be a list'));
    return [];
  }
  const specs: DependencySpec[] = [];
  deps.forEach((d: { name?: unknown; version?: unknown; repository?: unknown }, index) => {
    if (!d || typeof d.name !== 'string' || d.name === '') {
      issues.push(issueAt(chart, ['dependencies', index], 'a dependency needs a name'));
      return;
    }
    specs.push({
      name: d.name,
      version: d.version === undefined || d.version === null ? '' : String(d.version),
      repository: typeof d.repository === 'string' ? d.repository.trim() : '',
      index,
    });
  });
  return specs;
}

function lockEntries(lock: YamlFile): LockEntry[] {
  const deps = (lock.doc.toJS() as { dependencies?: unknown } | null)?.dependencies;
  if (!Array.isArray(deps)) return [];
  return deps
    .filter((d): d is Record<string, unknown> => !!d && typeof d === 'object' && typeof d.name === 'string' && d.version !== undefined)
    .map((d) => ({ name: d.name as string, version: String(d.version), repository: typeof d.repository === 'string' ? d.repository.trim() : '' }));
}

/** Chart names in charts/ and their versions: directories with a Chart.yaml, and `<name>-<version>.tgz` packages. */
async function vendoredCharts(dir: string): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return found;
  }
  for (const e of entries) {
    if (e.isDirectory()) {
      try {
        const c = parseYaml(await readFile(path.join(dir, e.name, 'Chart.yaml'), 'utf8')) as { name?: unknown; version?: unknown };
        if (typeof c?.name === 'string') found.set(c.name, String(c.version));
      } catch {
        // Not a chart directory; helm reports it when it loads the chart.
      }
    } else {
      const m = /^(.+)-(v?\d+\.\d+\.\d+[^/]*)\.tgz$/.exec(e.name);
      if (m) found.set(m[1], m[2]);
    }
  }
  return found;
}

function sameRepository(a: string, b: string): boolean {
  return a.replace(/\/+$/, '') === b.replace(/\/+$/, '');
}

/** Helm's constraints (Masterminds semver): `,` means and; the rest reads like node-semver. Unparsable: left to helm. */
function satisfies(version: string, constraint: string): boolean {
  if (constraint.trim() === '') return true;
  const range = constraint.replace(/\s*,\s*/g, ' ');
  if (semver.validRange(range, { loose: true }) === null || semver.valid(version, { loose: true }) === null) return true;
  return semver.satisfies(version, range, { loose: true, includePrerelease: true });
}

function inside(p: string, root: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

function displayPath(file: string, root: string): string {
  const rel = path.relative(root, file);
  return inside(file, root) && rel !== '' ? rel.split(path.sep).join('/') : file;
}

interface TreeEntry {
  rel: string;
  /** The real path (symlinks resolved). */
  real: string;
  dir: boolean;
}

/** Every file and directory under `dir`, symlinks followed when they resolve inside `root` (refused otherwise). */
async function walkTree(dir: string, root: string): Promise<TreeEntry[]> {
  const out: TreeEntry[] = [];
  const visit = async (realDir: string, rel: string, seen: Set<string>) => {
    const names = (await readdir(realDir)).sort();
    for (const name of names) {
      const childRel = rel ? `${rel}/${name}` : name;
      const real = await realpath(path.join(realDir, name)).catch(() => undefined);
      if (!real) throw new TerminalError(`${displayPath(path.join(realDir, name), root)}: a dangling symlink in the chart`);
      if (!inside(real, root)) throw new TerminalError(`${displayPath(path.join(realDir, name), root)}: a symlink out of the repository; refused`);
      const st = await stat(real);
      if (st.isDirectory()) {
        if (seen.has(real)) throw new TerminalError(`${displayPath(path.join(realDir, name), root)}: a symlink loop in the chart`);
        out.push({ rel: childRel, real, dir: true });
        await visit(real, childRel, new Set([...seen, real]));
      } else if (st.isFile()) {
        out.push({ rel: childRel, real, dir: false });
      }
    }
  };
  await visit(dir, '', new Set([dir]));
  return out;
}

async function treeHash(dir: string, root: string): Promise<string> {
  const hash = createHash('sha256');
  for (const e of await walkTree(dir, root)) {
    hash.update(`${e.dir ? 'd' : 'f'} ${e.rel}\0`);
    if (!e.dir) hash.update(createHash('sha256').update(await readFile(e.real)).digest());
  }
  return hash.digest('hex');
}

/** Copies `src` to `dest` as plain files and directories (symlinks inside `root` resolved, others refused). */
async function copyTree(src: string, dest: string, root: string): Promise<void> {
  await mkdir(dest, { recursive: true, mode: 0o700 });
  for (const e of await walkTree(src, root)) {
    const target = path.join(dest, ...e.rel.split('/'));
    if (e.dir) await mkdir(target, { recursive: true, mode: 0o700 });
    else await copyFile(e.real, target);
  }
}
