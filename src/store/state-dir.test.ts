import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Store } from './store.js';

const mode = (p: string) => (statSync(p).mode & 0o777).toString(8);

describe('the state directory', () => {
  const dirs: string[] = [];
  const parent = () => {
    const d = mkdtempSync(join(tmpdir(), 'keelson-statedir-'));
    dirs.push(d);
    return d;
  };
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('is created 0700 with the database files 0600, whatever the umask', () => {
    const state = join(parent(), 'state');
    const old = process.umask(0o022);
    try {
      const store = new Store(state);
      store.setKv('k', 'v');
      expect(mode(state)).toBe('700');
      for (const f of ['keelson.db', 'keelson.db-wal', 'keelson.db-shm']) expect(mode(join(state, f))).toBe('600');
      store.close();
    } finally {
      process.umask(old);
    }
  });

  it('an existing one readable by others is tightened, with a logged note', () => {
    const state = join(parent(), 'state');
    mkdirSync(state, { mode: 0o755 });
    chmodSync(state, 0o755);
    writeFileSync(join(state, 'keelson.db'), '', { mode: 0o644 });
    chmodSync(join(state, 'keelson.db'), 0o644);
    const lines: string[] = [];
    const log = pino({ level: 'info' }, new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }));
    const store = new Store(state, { log });
    expect(mode(state)).toBe('700');
    expect(mode(join(state, 'keelson.db'))).toBe('600');
    expect(lines.join('')).toContain('state directory permissions tightened');
    expect(lines.join('')).toContain('"from":"755"');
    store.close();
  });
});
