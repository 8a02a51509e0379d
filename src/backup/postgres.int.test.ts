import { existsSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres } from '../../test/postgres.js';
import { tempDir } from '../../test/helpers.js';
import { backupPostgres, listBackups, pgEnvOf, restorePostgres } from './postgres.js';

describe('PostgreSQL backups against a real server', () => {
  let pg: Awaited<ReturnType<typeof startPostgres>>;
  const state = tempDir('keelson-backup-');

  beforeAll(async () => {
    pg = await startPostgres();
    pg.psql('create database shop');
    pg.psql("create table orders (id int primary key, item text); insert into orders values (1, 'keel'), (2, 'sail')", 'shop');
  }, 60_000);

  afterAll(() => {
    pg?.stop();
    state.cleanup();
  });

  it('dumps to the state dir, keeps the newest N, and restores over changed data', async () => {
    const opts = { stateDir: state.dir, env: 'prod', app: 'shop', version: '1.0.0', databaseUrl: pg.url('shop'), retain: 2, timeoutMs: 60_000 };
    const first = await backupPostgres({ ...opts, revision: 'a'.repeat(40) });
    expect(first.file).toContain(`${state.dir}/backups/prod/shop/`);
    expect(first.name).toMatch(/^\d{8}T\d{6}\.\d{3}Z-1\.0\.0-aaaaaaa\.dump$/);
    expect(statSync(first.file).mode & 0o777).toBe(0o600);
    expect(first.bytes).toBeGreaterThan(0);

    pg.psql("delete from orders where id = 1; insert into orders values (3, 'rudder')", 'shop');
    await backupPostgres({ ...opts, revision: 'b'.repeat(40) });
    await backupPostgres({ ...opts, revision: 'c'.repeat(40) });
    const list = await listBackups(state.dir, 'prod', 'shop');
    expect(list.map((b) => b.name.split('-').pop())).toEqual(['ccccccc.dump', 'bbbbbbb.dump']);
    expect(existsSync(first.file)).toBe(false);

    pg.psql('drop table orders', 'shop');
    await restorePostgres({ file: list[1].file, databaseUrl: pg.url('shop'), timeoutMs: 60_000 });
    expect(pg.psql('select id, item from orders order by id', 'shop')).toBe('2|sail\n3|rudder');
  }, 60_000);

  it('reports a connection failure without the password', async () => {
    const bad = pg.url('nope').replace('keelson@', 'keelson:s3cret-pw@');
    const err = await backupPostgres({ stateDir: state.dir, env: 'prod', app: 'x', version: '1', revision: 'd'.repeat(40), databaseUrl: bad, retain: 1, timeoutMs: 30_000 }).catch((e) => e);
    expect(err.message).toMatch(/pg_dump exited 1: .*database "nope" does not exist/);
    expect(err.message).not.toContain('s3cret-pw');
  });

  it('reads URLs with socket directories, ports and encoded passwords', () => {
    expect(pgEnvOf('postgresql://u:p%40ss@db.internal:5433/app?sslmode=require')).toEqual({ PGUSER: 'u', PGPASSWORD: 'p@ss', PGHOST: 'db.internal', PGPORT: '5433', PGDATABASE: 'app', PGSSLMODE: 'require' });
    expect(pgEnvOf('postgres://u@/app?host=%2Ftmp%2Fs&port=6000')).toEqual({ PGUSER: 'u', PGHOST: '/tmp/s', PGPORT: '6000', PGDATABASE: 'app' });
    expect(() => pgEnvOf('postgres://host/')).toThrow(/names no database/);
  });
});
