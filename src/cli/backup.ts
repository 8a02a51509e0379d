/**
 * `keelson backup list|create|restore --env E --app A`: the PostgreSQL backups the `backup` hook step writes to
 * `<state>/backups/<env>/<app>/`. The database URL comes from --database-url, or from the app's environment
 * variable (--var, default DATABASE_URL) as recorded for the live app in the state dir.
 */
import { existsSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { backupPostgres, listBackups, restorePostgres } from '../backup/postgres.js';
import { ExitError, errorMessage } from '../core/errors.js';
import type { DesiredApp } from '../core/model.js';
import { Store } from '../store/store.js';
import { parse, parseDuration } from './args.js';

export async function backup(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  const { values } = parse(rest, {
    env: { type: 'string' },
    app: { type: 'string' },
    'state-dir': { type: 'string' },
    backup: { type: 'string' },
    'database-url': { type: 'string' },
    var: { type: 'string' },
    retain: { type: 'string' },
    timeout: { type: 'string' },
    yes: { type: 'boolean', short: 'y' },
    json: { type: 'boolean' },
  });
  if (!['list', 'create', 'restore'].includes(sub ?? '')) throw new ExitError(2, 'usage: keelson backup list|create|restore --env E --app A [--backup NAME] [--database-url URL | --var NAME] [--state-dir D]');
  if (!values.env || !values.app) throw new ExitError(2, `keelson backup ${sub} needs --env and --app`);
  const env = values.env;
  const app = values.app;
  const stateDir = resolve(values['state-dir'] ?? process.env.KEELSON_STATE_DIR ?? '.keelson');
  const timeoutMs = parseDuration(values.timeout ?? '10m');

  if (sub === 'list') {
    const list = await listBackups(stateDir, env, app);
    if (values.json) console.log(JSON.stringify(list, null, 2));
    else if (list.length === 0) console.log(`no backups of ${app} in ${env} under ${stateDir}`);
    else for (const b of list) console.log(`${b.name}  ${b.bytes} bytes  ${b.time}`);
    return;
  }

  const url = values['database-url'] ?? databaseUrlOf(stateDir, env, app, values.var ?? 'DATABASE_URL');
  try {
    if (sub === 'create') {
      const retain = Number(values.retain ?? 5);
      const b = await backupPostgres({ stateDir, env, app, revision: 'manual', version: 'manual', databaseUrl: url, retain, timeoutMs });
      console.log(`backup written: ${b.file} (${b.bytes} bytes)`);
      return;
    }
    const list = await listBackups(stateDir, env, app);
    const chosen = !values.backup || values.backup === 'latest' ? list[0] : list.find((b) => b.name === basename(values.backup!));
    if (!chosen) {
      throw new ExitError(1, list.length ? `no backup "${values.backup}" of ${app} in ${env}; run \`keelson backup list --env ${env} --app ${app}\`` : `no backups of ${app} in ${env} under ${stateDir}`);
    }
    if (!values.yes) {
      if (!process.stdin.isTTY) throw new ExitError(2, 'refusing to overwrite the database without confirmation: run in a terminal, or pass --yes');
      const rl = createInterface({ input: process.stdin, output: process.stdout });
      const answer = await rl.question(`Restore ${chosen.name} over the database of ${app} in ${env}? Objects in the backup are dropped and recreated. [y/N] `);
      rl.close();
      if (!/^y(es)?$/i.test(answer.trim())) throw new ExitError(1, 'restore cancelled');
    }
    await restorePostgres({ file: chosen.file, databaseUrl: url, timeoutMs });
    console.log(`restored ${chosen.name}`);
  } catch (err) {
    if (err instanceof ExitError) throw err;
    throw new ExitError(1, `backup ${sub} failed: ${errorMessage(err)}`);
  }
}

function databaseUrlOf(stateDir: string, env: string, app: string, name: string): string {
  if (!existsSync(resolve(stateDir, 'keelson.db'))) throw new ExitError(2, `no Keelson state in ${stateDir}; pass --state-dir or --database-url`);
  const store = new Store(stateDir);
  try {
    const row = store.inventory(env).find((r) => r.app === app);
    const url = (row?.spec as DesiredApp | undefined)?.vars?.[name];
    if (!url) throw new ExitError(2, `app ${app} in ${env} has no environment variable ${name}; pass --database-url or --var NAME`);
    return url;
  } finally {
    store.close();
  }
}
