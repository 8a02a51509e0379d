/**
 * Built-in PostgreSQL backups: `pg_dump --format=custom` into `<state>/backups/<env>/<app>/`, the newest `retain`
 * kept, restored with `pg_restore --clean --if-exists`. The connection URL is turned into PG* environment variables,
 * so the password never appears in argv (`ps`), logs, events or the store.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { TerminalError } from '../core/errors.js';

export interface BackupFile {
  name: string;
  file: string;
  bytes: number;
  time: string;
}

export interface BackupOptions {
  stateDir: string;
  env: string;
  app: string;
  revision: string;
  version: string;
  databaseUrl: string;
  retain: number;
  timeoutMs: number;
  signal?: AbortSignal;
}

const suffix = '.dump';

export function backupsDir(stateDir: string, env: string, app: string): string {
  return join(stateDir, 'backups', env, app);
}

/** PG* variables of a postgres:// URL (also `postgresql://user@/db?host=/socket/dir`). */
export function pgEnvOf(databaseUrl: string): Record<string, string> {
  const m = /^postgres(?:ql)?:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?]*)(?:\/([^?]*))?(?:\?(.*))?$/.exec(databaseUrl);
  if (!m) throw new TerminalError('the database URL is not a postgres:// URL (postgresql://user:password@host:port/database)');
  const dec = (s: string) => decodeURIComponent(s);
  const out: Record<string, string> = {};
  const [, user, password, hostPort, db, query] = m;
  if (user) out.PGUSER = dec(user);
  if (password) out.PGPASSWORD = dec(password);
  if (hostPort) {
    const hp = /^(\[[^\]]+\]|[^:]*)(?::(\d+))?$/.exec(hostPort);
    if (hp?.[1]) out.PGHOST = dec(hp[1].replace(/^\[|\]$/g, ''));
    if (hp?.[2]) out.PGPORT = hp[2];
  }
  if (db) out.PGDATABASE = dec(db);
  const params: Record<string, string> = { host: 'PGHOST', port: 'PGPORT', user: 'PGUSER', password: 'PGPASSWORD', dbname: 'PGDATABASE', sslmode: 'PGSSLMODE', connect_timeout: 'PGCONNECT_TIMEOUT', application_name: 'PGAPPNAME' };
  for (const [k, v] of new URLSearchParams(query ?? '')) if (params[k]) out[params[k]] = v;
  if (!out.PGDATABASE) throw new TerminalError('the database URL names no database (postgresql://…/DATABASE)');
  return out;
}

/** pg_dump / pg_restore: from KEELSON_PG_BIN, PATH, or Debian's versioned directories. */
export function pgTool(name: 'pg_dump' | 'pg_restore'): string {
  if (process.env.KEELSON_PG_BIN) return join(process.env.KEELSON_PG_BIN, name);
  for (const dir of (process.env.PATH ?? '').split(':')) if (dir && existsSync(join(dir, name))) return join(dir, name);
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
    for (const v of versions) if (existsSync(join(root, v, 'bin', name))) return join(root, v, 'bin', name);
  }
  throw new TerminalError(`${name} not found; install PostgreSQL client tools (Debian: apt-get install postgresql-client) or set KEELSON_PG_BIN`);
}

function stamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '');
}

/** Dumps the database; keeps the newest `retain` backups of the app. */
export async function backupPostgres(o: BackupOptions): Promise<BackupFile> {
  const dir = backupsDir(o.stateDir, o.env, o.app);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const safeVersion = o.version.replace(/[^A-Za-z0-9._-]/g, '_');
  const name = `${stamp(new Date())}-${safeVersion}-${o.revision.slice(0, 7)}${suffix}`;
  const file = join(dir, name);
  const tmp = join(dir, `.tmp-${process.pid}-${name}`);
  try {
    await runPg(pgTool('pg_dump'), ['--format=custom', '--no-password', `--file=${tmp}`], pgEnvOf(o.databaseUrl), o.timeoutMs, o.signal);
    await chmod(tmp, 0o600);
    await rename(tmp, file);
  } finally {
    await rm(tmp, { force: true });
  }
  await pruneBackups(dir, o.retain);
  const st = await stat(file);
  return { name, file, bytes: st.size, time: st.mtime.toISOString() };
}

/** Newest first. */
export async function listBackups(stateDir: string, env: string, app: string): Promise<BackupFile[]> {
  const dir = backupsDir(stateDir, env, app);
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith(suffix) && !n.startsWith('.')).sort().reverse();
  return Promise.all(
    names.map(async (name) => {
      const st = await stat(join(dir, name));
      return { name, file: join(dir, name), bytes: st.size, time: st.mtime.toISOString() };
    }),
  );
}

async function pruneBackups(dir: string, retain: number): Promise<void> {
  const names = (await readdir(dir)).filter((n) => n.endsWith(suffix) && !n.startsWith('.')).sort().reverse();
  for (const n of names.slice(retain)) await rm(join(dir, n), { force: true });
}

/** Restores a backup over the database: objects in the dump are dropped and recreated. */
export async function restorePostgres(o: { file: string; databaseUrl: string; timeoutMs: number }): Promise<void> {
  const env = pgEnvOf(o.databaseUrl);
  await runPg(pgTool('pg_restore'), ['--clean', '--if-exists', '--no-owner', '--no-password', '--single-transaction', `--dbname=${env.PGDATABASE}`, o.file], env, o.timeoutMs);
}

function runPg(bin: string, args: string[], pgEnv: Record<string, string>, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const base: Record<string, string> = {};
    for (const k of ['PATH', 'HOME', 'LANG', 'TZ']) if (process.env[k] !== undefined) base[k] = process.env[k]!;
    const child = spawn(bin, args, { env: { ...base, ...pgEnv }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err = (err + c.toString('utf8')).slice(-4096)));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const onAbort = () => child.kill('SIGKILL');
    signal?.addEventListener('abort', onAbort, { once: true });
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${bin}: ${e.message}`));
    });
    child.once('close', (code, sig) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (code === 0) return resolve();
      const why = sig ? `killed by ${sig}${sig === 'SIGKILL' ? ` (timeout ${timeoutMs / 1000}s?)` : ''}` : `exited ${code}`;
      // libpq messages name host, user and database, never the password.
      reject(new Error(`${bin.split('/').pop()} ${why}: ${err.trim().split('\n').slice(-3).join(' ')}`));
    });
  });
}
