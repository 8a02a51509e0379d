/**
 * The state directory holds the clone of the ops repository (with its credentials in the remote URL), logs, the
 * database and the secrets of running apps: only the user the engine runs as may read it. It is created 0700 and
 * the database files 0600; an existing directory that others can read is tightened, with a logged note.
 */
import { chmodSync, closeSync, mkdirSync, openSync, statSync } from 'node:fs';
import type { Logger } from '../log.js';

export const STATE_DIR_MODE = 0o700;
export const STATE_FILE_MODE = 0o600;

/** Creates `dir` 0700, or tightens it (logged). */
export function secureStateDir(dir: string, log?: Logger): void {
  mkdirSync(dir, { recursive: true, mode: STATE_DIR_MODE });
  tighten(dir, STATE_DIR_MODE, log);
}

/** Creates `file` 0600 if missing (SQLite gives its -wal and -shm files the database file's mode), or tightens it. */
export function securePrivateFile(file: string, log?: Logger): void {
  closeSync(openSync(file, 'a', STATE_FILE_MODE));
  tighten(file, STATE_FILE_MODE, log);
}

function tighten(path: string, mode: number, log?: Logger): void {
  let current: number;
  try {
    current = statSync(path).mode & 0o777;
  } catch {
    return;
  }
  if ((current & ~mode) === 0) return;
  chmodSync(path, mode);
  log?.warn({ path, from: current.toString(8), to: mode.toString(8) }, 'state directory permissions tightened: only the engine user may read it');
}

/** The database files that exist besides the database (WAL mode). */
export function databaseFiles(db: string): string[] {
  return [db, `${db}-wal`, `${db}-shm`];
}
