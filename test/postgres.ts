import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, tempDir } from './helpers.js';

/** Debian's PostgreSQL server binaries, or undefined when `postgresql` is not installed. */
export function postgresBin(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const v = readdirSync(root).filter((d) => existsSync(join(root, d, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a))[0];
  return v && join(root, v, 'bin');
}

/**
 * A throwaway PostgreSQL cluster in a temp dir: unix socket in that dir, a free port, trust auth for user `keelson`.
 * As root it runs as the `postgres` user (initdb refuses root). `stop()` shuts it down and removes the dir.
 */
export async function startPostgres(): Promise<{ url: (db?: string) => string; psql: (sql: string, db?: string) => string; stop: () => void }> {
  const bin = postgresBin();
  if (!bin) throw new Error('PostgreSQL is not installed (Debian: apt-get install postgresql)');
  const tmp = tempDir('keelson-pg-');
  const data = join(tmp.dir, 'data');
  const sock = join(tmp.dir, 'sock');
  mkdirSync(sock);
  const port = await freePort();
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    chmodSync(tmp.dir, 0o755);
    execFileSync('chown', ['-R', 'postgres:postgres', tmp.dir]);
  }
  const pg = (cmd: string, args: string[]) =>
    execFileSync(asRoot ? 'runuser' : join(bin, cmd), asRoot ? ['-u', 'postgres', '--', join(bin, cmd), ...args] : args, { stdio: 'pipe', cwd: tmp.dir });
  pg('initdb', ['-D', data, '-A', 'trust', '-U', 'keelson', '--no-sync', '-E', 'UTF8']);
  pg('pg_ctl', ['-D', data, '-w', '-l', join(tmp.dir, 'server.log'), '-o', `-k ${sock} -p ${port} -c listen_addresses= -c fsync=off`, 'start']);
  const url = (db = 'postgres') => `postgresql://keelson@/${db}?host=${encodeURIComponent(sock)}&port=${port}`;
  const psql = (sql: string, db = 'postgres') =>
    execFileSync(join(bin, 'psql'), ['-X', '-q', '-t', '-A', '-v', 'ON_ERROR_STOP=1', '-h', sock, '-p', String(port), '-U', 'keelson', '-d', db, '-c', sql], { encoding: 'utf8' }).trim();
  return {
    url,
    psql,
    stop: () => {
      try {
        pg('pg_ctl', ['-D', data, '-m', 'immediate', 'stop']);
      } finally {
        tmp.cleanup();
      }
    },
  };
}
