/**
 * An engine's identity for claims: `<hostname>/<id>`, the id kept in the state dir. The same engine restarted (same
 * host, same state dir) has the same identity and re-takes its own claims at once instead of waiting for them to
 * expire; two engines with different state dirs are different engines. (Two engines started on one state dir share
 * the identity: the claim's pid tells them apart while the first one lives.)
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

export function engineIdentity(stateDir: string): string {
  const file = join(stateDir, 'engine-id');
  let id: string;
  try {
    id = readFileSync(file, 'utf8').trim();
  } catch {
    id = '';
  }
  if (!/^[0-9a-f-]{8,}$/.test(id)) {
    id = randomUUID();
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    try {
      writeFileSync(file, `${id}\n`, { mode: 0o600, flag: 'wx' });
    } catch {
      // Written meanwhile by another engine starting on this state dir: theirs is the identity.
      id = readFileSync(file, 'utf8').trim();
    }
  }
  return `${hostname()}/${id.slice(0, 8)}`;
}
