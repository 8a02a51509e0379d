/**
 * The chart cache (`<state>/charts`), content-addressed by the package's sha256:
 *
 *   packages/<hex>.tgz     chart packages as downloaded
 *   charts/<hex>/          the same, unpacked (shared and read-only: never write into one)
 *   refs/<hex>.json        which package a pinned source + version resolved to, with its digest
 *   resolved/<hex>/        chart directories with their dependencies placed in charts/ (see chart-dependencies.ts)
 *   tmp/                   work in progress, renamed into place when complete
 *
 * Everything is created 0700/0600 and written through a temporary name, so a crash or a concurrent fetch never
 * leaves half an entry under its final name.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { sha256File, unpackTarGz } from '../local/artifact.js';

export interface RefRecord {
  /** The source as written: repository URL (+ name) or oci:// URL. */
  source: string;
  version: string;
  /** The digest a pin is compared with: the package's for HTTP repositories, the manifest's for OCI. */
  digest: string;
  packageDigest: string;
}

/** Package files hashed in this process: path → `ino:size:mtime` when they matched their name. */
const verified = new Map<string, string>();

export class ChartCache {
  constructor(readonly root: string) {}

  private dir(kind: 'packages' | 'charts' | 'refs' | 'resolved' | 'tmp'): string {
    return path.join(this.root, kind);
  }

  /** A new directory under tmp/ (removing what a crashed process left there more than an hour ago). */
  async tempDir(): Promise<string> {
    await mkdir(this.dir('tmp'), { recursive: true, mode: 0o700 });
    await this.sweepTmp();
    const d = path.join(this.dir('tmp'), `${process.pid}-${randomBytes(6).toString('hex')}`);
    await mkdir(d, { mode: 0o700 });
    return d;
  }

  private async sweepTmp(): Promise<void> {
    const cutoff = Date.now() - 60 * 60_000;
    for (const name of await readdir(this.dir('tmp')).catch(() => [])) {
      const p = path.join(this.dir('tmp'), name);
      const st = await lstat(p).catch(() => undefined);
      if (st && st.mtimeMs < cutoff) await rm(p, { recursive: true, force: true });
    }
  }

  packagePath(packageDigest: string): string {
    return path.join(this.dir('packages'), `${hex(packageDigest)}.tgz`);
  }

  async readRef(key: string): Promise<RefRecord | undefined> {
    try {
      const r = JSON.parse(await readFile(this.refPath(key), 'utf8')) as RefRecord;
      return typeof r.digest === 'string' && typeof r.packageDigest === 'string' ? r : undefined;
    } catch {
      return undefined;
    }
  }

  async writeRef(key: string, record: RefRecord): Promise<void> {
    await this.writeAtomic(this.refPath(key), JSON.stringify(record, null, 2) + '\n');
  }

  /**
   * Whether the package is cached with the content its name says (a corrupted entry is removed). Hashed once per
   * process and file version: a render of many apps from one chart does not read the package each time.
   */
  async hasPackage(packageDigest: string): Promise<boolean> {
    const file = this.packagePath(packageDigest);
    let stamp: string;
    try {
      const st = await lstat(file);
      if (!st.isFile()) return false;
      stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
      if (verified.get(file) === stamp) return true;
      if (`sha256:${await sha256File(file)}` === packageDigest) {
        verified.set(file, stamp);
        return true;
      }
    } catch {
      return false;
    }
    verified.delete(file);
    await rm(file, { force: true });
    return false;
  }

  async putPackage(packageDigest: string, body: Buffer): Promise<void> {
    await this.writeAtomic(this.packagePath(packageDigest), body);
  }

  /** The unpacked chart directory of a cached package, unpacking it the first time. */
  async unpacked(packageDigest: string): Promise<string> {
    const dest = path.join(this.dir('charts'), hex(packageDigest));
    if (await isDir(dest)) return dest;
    const tmp = await this.tempDir();
    try {
      await unpackTarGz(this.packagePath(packageDigest), tmp, { maxBytes: 256 * 1024 ** 2 });
      await removeGroupOtherWrite(tmp);
      await this.publishDir(tmp, dest);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
    return dest;
  }

  resolvedPath(key: string): string {
    return path.join(this.dir('resolved'), hex(key));
  }

  /** Moves a finished directory to its final name; if another process got there first, keeps theirs. */
  async publishDir(tmp: string, dest: string): Promise<void> {
    await mkdir(path.dirname(dest), { recursive: true, mode: 0o700 });
    try {
      await rename(tmp, dest);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if ((code !== 'ENOTEMPTY' && code !== 'EEXIST') || !(await isDir(dest))) throw err;
    }
  }

  private refPath(key: string): string {
    return path.join(this.dir('refs'), `${createHash('sha256').update(key).digest('hex')}.json`);
  }

  private async writeAtomic(file: string, data: string | Buffer): Promise<void> {
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await mkdir(this.dir('tmp'), { recursive: true, mode: 0o700 });
    const tmp = path.join(this.dir('tmp'), `${process.pid}-${randomBytes(6).toString('hex')}.part`);
    try {
      await writeFile(tmp, data, { mode: 0o600, flag: 'wx' });
      await rename(tmp, file);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }
}

function hex(digest: string): string {
  return digest.replace(/^sha256:/, '');
}

export async function isDir(p: string): Promise<boolean> {
  try {
    return (await lstat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** Archives may carry world-writable modes; nothing in the cache should be writable by others. */
async function removeGroupOtherWrite(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isSymbolicLink()) continue;
    const st = await lstat(p);
    if (st.mode & 0o022) await chmod(p, st.mode & 0o755);
    if (entry.isDirectory()) await removeGroupOtherWrite(p);
  }
}
