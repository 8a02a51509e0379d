/**
 * Copies a PostgreSQL database between environments: `pg_dump --format=custom | pg_restore --clean`.
 * Connection URLs come from the apps' environment; the password travels in PGPASSWORD, never on a command line.
 */
import { spawn } from 'node:child_process';
import { ExitError } from '../core/errors.js';
import type { DesiredEnvironment } from '../core/model.js';
import { redact } from '../source/git.js';

export interface PgConnection {
  /** The URL without its password (safe to show and to pass as an argument). */
  url: string;
  password?: string;
}

const pgUrl = /^(postgres(?:ql)?):\/\/(?:([^:@/?]*)(?::([^@/?]*))?@)?([^/?]*)(?:\/([^?]*))?(?:\?(.*))?$/;

/** libpq URLs may have an empty host (`postgresql://user@/db?host=/run/sock`), which WHATWG URL rejects: parsed by hand. */
export function parsePgUrl(text: string): PgConnection {
  const m = pgUrl.exec(text.trim());
  if (!m) throw new ExitError(2, `not a PostgreSQL URL: ${redact(text)} (expected postgresql://user:password@host:port/db)`);
  const [, scheme, user, password, hostport, db, query] = m;
  const url = `${scheme}://${user ? `${user}@` : ''}${hostport}${db !== undefined ? `/${db}` : ''}${query !== undefined ? `?${query}` : ''}`;
  return { url, password: password !== undefined ? decodeURIComponent(password) : undefined };
}

/** The database URL an environment's apps use: the value of `variable` (unambiguous across the chosen apps). */
export function databaseUrlOf(env: DesiredEnvironment, variable: string, app?: string): string {
  const apps = app ? env.apps.filter((a) => a.name === app) : env.apps;
  if (app && apps.length === 0) throw new ExitError(1, `environment "${env.name}" does not run app "${app}"`);
  const values = [...new Set(apps.map((a) => a.vars[variable]).filter((v): v is string => v !== undefined && v !== ''))];
  if (values.length === 0) throw new ExitError(1, `no app of environment "${env.name}" sets ${variable}; pass --app or --var to say where its database URL is`);
  if (values.length > 1) throw new ExitError(1, `apps of environment "${env.name}" set different ${variable} values; pass --app to choose one`);
  return values[0];
}

function sameDatabase(a: PgConnection, b: PgConnection): boolean {
  const norm = (c: PgConnection) => {
    const [, , , , hostport = '', db = '', query = ''] = pgUrl.exec(c.url) ?? [];
    const q = new URLSearchParams(query);
    const [h, p] = hostport.split(':');
    return `${q.get('host') ?? (h || 'localhost')}:${q.get('port') ?? (p || '5432')}/${q.get('dbname') ?? decodeURIComponent(db)}`;
  };
  return norm(a) === norm(b);
}

export interface CopyResult {
  durationMs: number;
  bytes: number;
}

/** Dumps `from` and restores it into `to` (objects of the dump are dropped and recreated there). */
export async function copyPostgres(fromUrl: string, toUrl: string, o: { pgBin?: string } = {}): Promise<CopyResult> {
  const from = parsePgUrl(fromUrl);
  const to = parsePgUrl(toUrl);
  if (sameDatabase(from, to)) throw new ExitError(2, `source and destination are the same database (${from.url}); refusing to copy onto itself`);
  const bin = (name: string) => (o.pgBin ? `${o.pgBin}/${name}` : name);
  const started = Date.now();
  const envOf = (c: PgConnection) => ({ ...process.env, ...(c.password !== undefined ? { PGPASSWORD: c.password } : {}) });
  const dump = spawn(bin('pg_dump'), ['--format=custom', '--no-owner', '--no-acl', `--dbname=${from.url}`], { env: envOf(from), stdio: ['ignore', 'pipe', 'pipe'] });
  const restore = spawn(bin('pg_restore'), ['--clean', '--if-exists', '--no-owner', '--no-acl', '--single-transaction', '--exit-on-error', `--dbname=${to.url}`], {
    env: envOf(to),
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  let bytes = 0;
  dump.stdout.on('data', (b: Buffer) => (bytes += b.length));
  dump.stdout.pipe(restore.stdin);
  restore.stdin.on('error', () => undefined); // restore failed early; its own exit reports why
  const done = (child: ReturnType<typeof spawn>, name: string) =>
    new Promise<{ name: string; code: number | null; stderr: string }>((resolve) => {
      const err: Buffer[] = [];
      child.stderr!.on('data', (b: Buffer) => err.push(b));
      child.once('error', (e) => resolve({ name, code: -1, stderr: `${e.message}. Is the PostgreSQL client (Debian: postgresql-client) installed?` }));
      child.once('close', (code) => resolve({ name, code, stderr: Buffer.concat(err).toString('utf8').trim() }));
    });
  const results = await Promise.all([done(dump, 'pg_dump'), done(restore, 'pg_restore')]);
  const failed = results.filter((r) => r.code !== 0);
  if (failed.length) {
    throw new ExitError(1, failed.map((r) => `${r.name} failed (exit ${r.code}): ${redact(r.stderr).split('\n').slice(0, 5).join('\n')}`).join('\n'));
  }
  return { durationMs: Date.now() - started, bytes };
}
