import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commitAll, gitInit, runCli, tempDir, writeTree } from '../../test/helpers.js';
import { startPostgres } from '../../test/postgres.js';
import { parsePgUrl } from './postgres-copy.js';

describe('keelson env copy-data --postgres (real PostgreSQL)', () => {
  const tmp = tempDir('keelson-copy-data-');
  let pg: Awaited<ReturnType<typeof startPostgres>>;

  beforeAll(async () => {
    pg = await startPostgres();
  }, 60_000);
  afterAll(() => {
    pg?.stop();
    tmp.cleanup();
  });

  it('dumps the source environment database and restores it into the target', () => {
    pg.psql('create database shop_staging');
    pg.psql('create database shop_pr1');
    pg.psql("create table orders (id int primary key, item text); insert into orders values (1, 'keel'), (2, 'sail');", 'shop_staging');
    pg.psql("create table orders (id int primary key, item text); insert into orders values (99, 'stale');", 'shop_pr1');
    const env = (name: string, db: string) => `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata:
  name: ${name}
spec:
  apps:
    web:
      env:
        DATABASE_URL: "${pg.url(db)}"
`;
    writeTree(tmp.dir, {
      'app.yaml': `apiVersion: keelson.dev/v1alpha1
kind: App
metadata:
  name: web
spec:
  version: "1"
  artifact: { path: ./rel }
  run: { command: ["node", "s.js"] }
`,
      'rel/s.js': '',
      'staging.yaml': env('staging', 'shop_staging'),
      'pr-1.yaml': env('pr-1', 'shop_pr1'),
    });
    gitInit(tmp.dir);
    commitAll(tmp.dir, 'ops');

    const refused = runCli(['env', 'copy-data', '--from', 'staging', '--to', 'pr-1', '--postgres', '--repo', tmp.dir]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('--yes');
    expect(pg.psql('select item from orders order by id', 'shop_pr1')).toBe('stale');

    const r = runCli(['env', 'copy-data', '--from', 'staging', '--to', 'pr-1', '--postgres', '--yes', '--repo', tmp.dir]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('copied the PostgreSQL database of staging to pr-1');
    expect(pg.psql('select string_agg(item, \',\' order by id) from orders', 'shop_pr1')).toBe('keel,sail');
    // The source is untouched.
    expect(pg.psql('select count(*) from orders', 'shop_staging')).toBe('2');

    writeFileSync(join(tmp.dir, 'pr-1.yaml'), env('pr-1', 'shop_staging'));
    const same = runCli(['env', 'copy-data', '--from', 'staging', '--to', 'pr-1', '--postgres', '--yes', '--repo', tmp.dir]);
    expect(same.code).toBe(2);
    expect(same.stderr).toContain('refusing to copy onto itself');
  });

  it('keeps passwords out of argv', () => {
    expect(parsePgUrl('postgresql://app:s%3Acret@db.example:5433/shop?sslmode=require')).toEqual({
      url: 'postgresql://app@db.example:5433/shop?sslmode=require',
      password: 's:cret',
    });
    expect(parsePgUrl('postgres://u@/db?host=/run/pg').url).toBe('postgres://u@/db?host=/run/pg');
  });
});
