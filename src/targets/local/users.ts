/**
 * The machine's user database, for `user:` of an App: names → uid/gid through `getent` (so NSS sources such as LDAP
 * count), else a small parser of /etc/passwd and /etc/group where getent is missing.
 *
 *   const web = await lookupUser('web');          // { name: 'web', uid: 998, gid: 998, home: '/home/web' } | undefined
 *   const runAs = await resolveRunAs({ name: 'web', group: 'www-data' });
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import type { AppUser } from '../../core/model.js';

export interface SystemUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export interface SystemGroup {
  name: string;
  gid: number;
}

/** Who an app's processes run as: ids resolved at start, so a user re-created with new ids is picked up. */
export interface RunAs {
  user: string;
  group: string;
  uid: number;
  gid: number;
  home: string;
}

/** Thrown when a user or group named by an App does not exist on this machine. */
export class UnknownUserError extends Error {}

export async function lookupUser(name: string): Promise<SystemUser | undefined> {
  const f = await lookup('passwd', name, '/etc/passwd');
  if (!f || f.length < 7) return undefined;
  return { name: f[0], uid: Number(f[2]), gid: Number(f[3]), home: f[5] };
}

export async function lookupGroup(name: string): Promise<SystemGroup | undefined> {
  const f = await lookup('group', name, '/etc/group');
  if (!f || f.length < 3) return undefined;
  return { name: f[0], gid: Number(f[2]) };
}

async function groupName(gid: number): Promise<string> {
  return (await lookup('group', String(gid), '/etc/group'))?.[0] ?? String(gid);
}

/** The ids an App's `user:` names, or UnknownUserError saying what is missing and how to add it. */
export async function resolveRunAs(u: AppUser): Promise<RunAs> {
  const user = await lookupUser(u.name);
  if (!user) throw new UnknownUserError(`user "${u.name}" does not exist on this machine; create it (e.g. useradd --system --no-create-home ${u.name}) or change "user:"`);
  if (u.group === undefined) return { user: user.name, group: await groupName(user.gid), uid: user.uid, gid: user.gid, home: user.home };
  const group = await lookupGroup(u.group);
  if (!group) throw new UnknownUserError(`group "${u.group}" does not exist on this machine; create it (e.g. groupadd --system ${u.group}) or change "user:"`);
  return { user: user.name, group: group.name, uid: user.uid, gid: group.gid, home: user.home };
}

/** The engine's own identity, as the app's would be without `user:`. */
export function engineRunAs(): RunAs {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  return { user: process.env.USER ?? String(uid), group: String(gid), uid, gid, home: process.env.HOME ?? '/' };
}

/** One entry of a user database by name or numeric id: its colon-separated fields. */
async function lookup(db: 'passwd' | 'group', key: string, file: string): Promise<string[] | undefined> {
  const out = await getent(db, key);
  if (out !== null) return out ? out.split(':') : undefined;
  // No getent: the flat files.
  const text = await readFile(file, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === key || (/^[0-9]+$/.test(key) && f[2] === key)) return f;
  }
  return undefined;
}

/** `getent DB KEY`'s first line; '' when not found; null when getent itself is missing or failed. */
function getent(db: string, key: string): Promise<string | null> {
  return new Promise((resolve) => {
    execFile('getent', [db, '--', key], { timeout: 5000 }, (err, stdout) => {
      if (!err) return resolve(stdout.split('\n')[0]);
      // Exit 2: the key is not in the database.
      resolve((err as { code?: unknown }).code === 2 ? '' : null);
    });
  });
}
