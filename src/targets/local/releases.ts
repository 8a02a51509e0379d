/**
 * Immutable release directories of the local target: `<releasesDir>/<app>/<version>-<hash12>/`, a read-only copy
 * of an unpacked artifact or checkout directory, named by its content hash.
 *
 *   const release = await materializeRelease({ releasesDir, app: 'web', version: '1.4.0', sourceDir });
 *   // run the app with cwd = release.dir; later:
 *   const { intact, changed } = await verifyRelease(release);
 *
 * Each release has a manifest (`<releasesDir>/<app>/.meta/<id>.json`, per-file fingerprints) so drift can be
 * reported file by file.
 */
import { randomBytes } from 'node:crypto';
import { chmod, cp, lstat, mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { TerminalError } from '../../core/errors.js';
import { hashDirectory, manifestDirectory, digestManifest, type Manifest } from '../../source/content-digest.js';

export { hashDirectory, manifestDirectory, digestManifest, type Manifest };

export interface Release {
  /** `${version}-${hash.slice(0, 12)}` */
  id: string;
  dir: string;
  /** sha256 of the directory content, see hashDirectory. */
  hash: string;
}

export interface ListedRelease extends Release {
  version: string;
  mtimeMs: number;
}

/** Relative path (posix separators) → fingerprint: `d`, `l:<target>`, `f-:<sha256>` or `fx:<sha256>` (executable). */

interface ReleaseMeta {
  version: string;
  hash: string;
  files: Record<string, string>;
}

const metaDirName = '.meta';
const tmpPrefix = '.tmp-';
// Temp copies older than this are left over from a crash; younger ones may belong to a copy in progress.
const staleTmpMs = 60 * 60_000;

/**
 * Copies `sourceDir` to `<releasesDir>/<app>/<id>` unless that release already exists, and makes it read-only.
 * Safe to call repeatedly and concurrently: each copy goes to its own temp sibling and is renamed into place,
 * the first rename wins and later ones are discarded.
 */
export async function materializeRelease(opts: {
  releasesDir: string;
  app: string;
  version: string;
  sourceDir: string;
}): Promise<Release> {
  checkName('app', opts.app);
  checkName('version', opts.version);
  const appDir = path.join(opts.releasesDir, opts.app);
  const existing = releaseOf(appDir, opts.version, await hashDirectory(opts.sourceDir));
  if (await isDir(existing.dir)) return existing;

  await mkdir(path.join(appDir, metaDirName), { recursive: true });
  const tmp = path.join(appDir, `${tmpPrefix}${existing.id}-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await cp(opts.sourceDir, tmp, { recursive: true, verbatimSymlinks: true, errorOnExist: true, force: false });
    // Hash the copy, not the source: the source may have changed while it was copied.
    const manifest = await manifestDirectory(tmp);
    const release = releaseOf(appDir, opts.version, digestManifest(manifest));
    if (await isDir(release.dir)) return release;
    const meta: ReleaseMeta = { version: opts.version, hash: release.hash, files: Object.fromEntries(manifest) };
    await writeAtomic(metaPath(appDir, release.id), JSON.stringify(meta));
    await makeReadOnly(tmp);
    try {
      await rename(tmp, release.dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if ((code === 'ENOTEMPTY' || code === 'EEXIST') && (await isDir(release.dir))) return release;
      throw err;
    }
    return release;
  } finally {
    await removeTree(tmp);
  }
}

/** Re-hashes a release; `changed` lists modified, added and removed paths (`.` if the manifest is missing). */
export async function verifyRelease(release: Release): Promise<{ intact: boolean; changed: string[] }> {
  let current: Manifest;
  try {
    current = await manifestDirectory(release.dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    current = new Map();
  }
  if (digestManifest(current) === release.hash) return { intact: true, changed: [] };
  const meta = await readMeta(path.dirname(release.dir), release.id);
  if (!meta) return { intact: false, changed: ['.'] };
  const changed = new Set<string>();
  for (const [rel, fp] of Object.entries(meta.files)) if (current.get(rel) !== fp) changed.add(rel);
  for (const rel of current.keys()) if (!(rel in meta.files)) changed.add(rel);
  return { intact: false, changed: [...changed].sort() };
}

/** Releases of an app, newest first (by mtime of the release directory). */
export async function listReleases(releasesDir: string, app: string): Promise<ListedRelease[]> {
  checkName('app', app);
  const appDir = path.join(releasesDir, app);
  let names: string[];
  try {
    names = await readdir(appDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: ListedRelease[] = [];
  for (const id of names) {
    if (id.startsWith('.')) continue;
    const dir = path.join(appDir, id);
    const st = await stat(dir).catch(() => undefined);
    if (!st?.isDirectory()) continue;
    const meta = await readMeta(appDir, id);
    out.push({ id, dir, hash: meta?.hash ?? '', version: meta?.version ?? id.replace(/-[0-9a-f]{12}$/, ''), mtimeMs: st.mtimeMs });
  }
  return out.sort((a, b) => b.mtimeMs - a.mtimeMs || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
}

/** Removes all but the newest `keep` releases and those in use; returns the removed ids. */
export async function pruneReleases(opts: {
  releasesDir: string;
  app: string;
  keep?: number;
  inUse: Set<string>;
}): Promise<string[]> {
  const keep = opts.keep ?? 5;
  const appDir = path.join(opts.releasesDir, opts.app);
  const removed: string[] = [];
  const releases = await listReleases(opts.releasesDir, opts.app);
  for (const r of releases.slice(keep)) {
    if (opts.inUse.has(r.id)) continue;
    await removeTree(r.dir);
    await rm(metaPath(appDir, r.id), { force: true });
    removed.push(r.id);
  }
  for (const name of await readdir(appDir).catch(() => [] as string[])) {
    if (!name.startsWith(tmpPrefix)) continue;
    const st = await lstat(path.join(appDir, name)).catch(() => undefined);
    if (st && Date.now() - st.mtimeMs > staleTmpMs) await removeTree(path.join(appDir, name));
  }
  return removed.sort();
}

function releaseOf(appDir: string, version: string, hash: string): Release {
  const id = `${version}-${hash.slice(0, 12)}`;
  return { id, dir: path.join(appDir, id), hash };
}

function checkName(what: string, value: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/.test(value)) {
    throw new TerminalError(
      `${what} ${JSON.stringify(value)} cannot name a release directory; use letters, digits and . _ + - (max 128)`,
    );
  }
}

function metaPath(appDir: string, id: string): string {
  return path.join(appDir, metaDirName, `${id}.json`);
}

async function readMeta(appDir: string, id: string): Promise<ReleaseMeta | undefined> {
  try {
    return JSON.parse(await readFile(metaPath(appDir, id), 'utf8')) as ReleaseMeta;
  } catch {
    return undefined;
  }
}

async function writeAtomic(file: string, data: string): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, data, { mode: 0o644 });
    await rename(tmp, file);
  } finally {
    await rm(tmp, { force: true });
  }
}

async function isDir(p: string): Promise<boolean> {
  return (await lstat(p).catch(() => undefined))?.isDirectory() ?? false;
}

/** Files 0444 (0555 if executable), directories 0555; children before their directory. */
async function makeReadOnly(dir: string): Promise<void> {
  for (const d of await readdir(dir, { withFileTypes: true })) {
    const abs = path.join(dir, d.name);
    if (d.isDirectory()) await makeReadOnly(abs);
    else if (d.isFile()) await chmod(abs, ((await lstat(abs)).mode & 0o111) !== 0 ? 0o555 : 0o444);
  }
  await chmod(dir, 0o555);
}

/** rm -rf that also works on read-only trees: directories must be writable to unlink their entries. */
async function removeTree(dir: string): Promise<void> {
  const unlock = async (d: string): Promise<void> => {
    await chmod(d, 0o755);
    for (const e of await readdir(d, { withFileTypes: true })) if (e.isDirectory()) await unlock(path.join(d, e.name));
  };
  try {
    await unlock(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  await rm(dir, { recursive: true, force: true });
}
