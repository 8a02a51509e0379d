/**
 * Claims of local environments: files in a directory every engine of the host shares (`--claims-dir`).
 *
 * An environment's claim is a sequence of generations, `<scope>.<env>@<n>.json` (scope: the ops repository); the highest one is the claim. Taking a claim
 * (the first one, or over an expired or released one) creates generation n+1 with `link(2)` from a complete temp
 * file: link fails with EEXIST when the name exists, so of several standbys that saw generation n expire exactly one
 * creates n+1 and wins, and nobody ever sees a half-written claim. Only the holder of generation n rewrites it (renewal,
 * release), with a temp file renamed over it (atomic), and only while n is still the highest. Generations never
 * restart, so an old read can never be mistaken for a new claim.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { homedir, tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import type { ClaimBackend, ClaimRecord, ClaimWrite } from './claim.js';

/**
 * The default claims directory of this user on this host: `$XDG_RUNTIME_DIR/keelson/claims` when set (a per-user
 * runtime dir, e.g. /run/user/1000), else `keelson-claims-<uid>` in the system temp dir.
 */
export function defaultClaimsDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'keelson', 'claims');
  let uid: number | string;
  try {
    uid = userInfo().uid;
  } catch {
    uid = homedir().split('/').pop() ?? 'user';
  }
  return join(tmpdir(), `keelson-claims-${uid}`);
}

export class FileClaims implements ClaimBackend {
  readonly clockSkewMs = 0; // one host, one clock
  readonly where: string;
  private ready?: Promise<unknown>;

  /** `scope`: which ops repository (see backends.ts); claim files are named `<scope>.<env>@<n>.json`. */
  constructor(
    private readonly dir: string,
    private readonly scope = 'default',
  ) {
    this.where = dir;
  }

  private name(env: string): string {
    return `${this.scope}.${encodeURIComponent(env)}`;
  }

  async read(env: string): Promise<ClaimRecord | undefined> {
    for (let tries = 0; ; tries++) {
      const gen = await this.highest(env);
      if (gen === 0) return undefined;
      try {
        const data = JSON.parse(await readFile(this.file(env, gen), 'utf8')) as ClaimWrite;
        return { ...data, version: versionOf(gen, data) };
      } catch (err) {
        // Cleaned up between readdir and read (a newer generation exists): read again.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || tries > 3) throw err;
      }
    }
  }

  async write(env: string, current: ClaimRecord | undefined, next: ClaimWrite, mode: 'renew' | 'take'): Promise<ClaimRecord | undefined> {
    const have = current ? generationOf(current) : 0;
    if (mode === 'renew') {
      if (!current || (await this.highest(env)) !== have) return undefined;
      await this.replace(env, have, next);
      // A standby may only create n+1 once n expired; if it did, this renewal came too late and counts for nothing.
      return (await this.highest(env)) === have ? { ...next, version: versionOf(have, next) } : undefined;
    }
    const gen = have + 1;
    const tmp = await this.temp(env, gen, next);
    try {
      await link(tmp, this.file(env, gen));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return undefined;
      throw err;
    } finally {
      await unlink(tmp).catch(() => {});
    }
    // Older generations are history now.
    for (const g of await this.generations(env)) if (g < gen) await unlink(this.file(env, g)).catch(() => {});
    return { ...next, version: versionOf(gen, next) };
  }

  async release(env: string, current: ClaimRecord): Promise<void> {
    const gen = generationOf(current);
    if ((await this.highest(env)) !== gen) return;
    await this.replace(env, gen, { ...current, holder: '', renewedAt: new Date().toISOString() });
  }

  private file(env: string, gen: number): string {
    return join(this.dir, `${this.name(env)}@${gen}.json`);
  }

  private async replace(env: string, gen: number, data: ClaimWrite): Promise<void> {
    const { version: _v, ...rest } = data as ClaimWrite & { version?: string };
    const tmp = await this.temp(env, gen, rest);
    try {
      await rename(tmp, this.file(env, gen));
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw err;
    }
  }

  private async temp(env: string, gen: number, data: ClaimWrite): Promise<string> {
    this.ready ??= mkdir(this.dir, { recursive: true, mode: 0o700 });
    await this.ready;
    const tmp = join(this.dir, `.${this.name(env)}@${gen}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    await writeFile(tmp, `${JSON.stringify(data)}\n`, { mode: 0o600, flag: 'wx' });
    return tmp;
  }

  private async generations(env: string): Promise<number[]> {
    const prefix = `${this.name(env)}@`;
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return names.filter((n) => n.startsWith(prefix) && n.endsWith('.json')).map((n) => Number(n.slice(prefix.length, -5))).filter((g) => Number.isInteger(g) && g > 0);
  }

  private async highest(env: string): Promise<number> {
    return Math.max(0, ...(await this.generations(env)));
  }
}

/**
 * A record's version: its generation and renewal time, so that every renewal is a new version (a standby that sees
 * the same version for a whole duration knows the holder stopped renewing).
 */
function versionOf(gen: number, data: ClaimWrite): string {
  return `${gen}/${data.renewedAt}`;
}

function generationOf(r: ClaimRecord): number {
  return Number.parseInt(r.version, 10);
}
