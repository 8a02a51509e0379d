/**
 * Who an app runs as on the local target, and the files it may touch.
 *
 * - An App's `user:` (or its environment entry's) names a system user; replicas, exec probes and `keelson run`
 *   one-offs run as that user and group, supplementary groups cleared.
 * - Without `user:`, the engine's policy decides: an engine that is not root runs apps as itself (a single-user
 *   setup, as always); an engine running as root runs them as `defaultUser` when the config names one, as root only
 *   when the config says `allowRootApps: true`, and otherwise refuses with a message naming both fixes.
 * - Release directories stay owned by the engine and read-only; `releases/<env>/<app>` is made group-owned by the
 *   app's group, mode 0750, so other apps cannot look in. `$DATA_DIR` (`<state>/data/<env>/<app>`) is the app's
 *   private writable directory: owned by its user, mode 0700, kept across releases.
 */
import { chmod, chown, lstat, mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { DesiredApp } from '../../core/model.js';
import { resolveRunAs, type RunAs } from './users.js';

export interface IsolationPolicy {
  /** Apps without `user:` may run as root when the engine runs as root. Default false. */
  allowRootApps?: boolean;
  /** The user apps without `user:` run as when the engine runs as root. */
  defaultUser?: string;
}

/** Refusals and misconfigurations that no retry fixes: the desired state or the engine config must change. */
export class IsolationError extends Error {}

/** The policy from KEELSON_ALLOW_ROOT_APPS / KEELSON_DEFAULT_USER (what `keelson up` reads unless flags or config say). */
export function policyFromEnv(env: NodeJS.ProcessEnv = process.env): IsolationPolicy {
  const allow = (env.KEELSON_ALLOW_ROOT_APPS ?? '').toLowerCase();
  return {
    allowRootApps: allow === '1' || allow === 'true' || allow === 'yes',
    ...(env.KEELSON_DEFAULT_USER ? { defaultUser: env.KEELSON_DEFAULT_USER } : {}),
  };
}

export function engineIsRoot(): boolean {
  return process.getuid?.() === 0;
}

/** One line for the start-up log: what apps without `user:` run as. */
export function describePolicy(policy: IsolationPolicy): string {
  if (!engineIsRoot()) return `apps run as the engine's user (uid ${process.getuid?.()}); "user:" needs an engine running as root`;
  if (policy.defaultUser) return `apps without "user:" run as ${policy.defaultUser}`;
  if (policy.allowRootApps) return 'apps without "user:" run as root (allowRootApps is set)';
  return 'apps without "user:" are refused (the engine runs as root; set "user:" or defaultUser, or allowRootApps: true)';
}

const fixes = 'set "user: <name>" in the App or its environment entry, or in keelson.yaml "defaultUser: <name>" (--default-user, KEELSON_DEFAULT_USER) or "allowRootApps: true" (--allow-root-apps, KEELSON_ALLOW_ROOT_APPS=true)';

/**
 * What the app's processes run as: a user to switch to, or undefined for the engine's own user. Throws an
 * IsolationError saying what to change when the policy refuses or the user cannot be used.
 */
export async function runAsFor(app: DesiredApp, policy: IsolationPolicy): Promise<RunAs | undefined> {
  const where = `${app.source.file}:${app.source.line}:${app.source.col}`;
  const named = app.user ?? (engineIsRoot() && policy.defaultUser ? { name: policy.defaultUser } : undefined);
  if (!named) {
    if (!engineIsRoot() || policy.allowRootApps) return undefined;
    throw new IsolationError(`refusing to run app "${app.name}" as root: the engine runs as root and App "${app.name}" (${where}) names no user; ${fixes}`);
  }
  let runAs: RunAs;
  try {
    runAs = await resolveRunAs(named);
  } catch (err) {
    const from = app.user ? `App "${app.name}" (${where})` : 'defaultUser of the engine config';
    throw new IsolationError(`${from}: ${(err as Error).message}`);
  }
  const self = process.getuid?.() ?? 0;
  if (!engineIsRoot()) {
    if (runAs.uid === self) return undefined;
    throw new IsolationError(`app "${app.name}" names user "${runAs.user}", but the engine runs as uid ${self}, not root, and cannot start processes as another user; run the engine as root or remove "user:"`);
  }
  if (runAs.uid === 0 && !policy.allowRootApps) {
    throw new IsolationError(`refusing to run app "${app.name}" as root (user "${runAs.user}" of ${app.user ? `App "${app.name}" (${where})` : 'defaultUser'} has uid 0); name an unprivileged user, or set allowRootApps: true in keelson.yaml`);
  }
  return runAs;
}

/** The environment variables that say who the process is. */
export function identityEnv(runAs: RunAs | undefined): Record<string, string> {
  return runAs ? { HOME: runAs.home, USER: runAs.user, LOGNAME: runAs.user } : {};
}

export function dataDirOf(stateDir: string, env: string, app: string): string {
  return join(stateDir, 'data', env, app);
}

/**
 * `$DATA_DIR`: created on first use and kept across releases; owned by the app's user, 0700. The directories above
 * it may be passed through (0711) but not listed. A changed user takes its data along (recursive chown).
 */
export async function prepareDataDir(stateDir: string, env: string, app: string, runAs: RunAs | undefined): Promise<string> {
  const dir = dataDirOf(stateDir, env, app);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(join(stateDir, 'data'), 0o711);
  await chmod(join(stateDir, 'data', env), 0o711);
  await chmod(dir, 0o700);
  if (runAs) {
    const st = await stat(dir);
    if (st.uid !== runAs.uid || st.gid !== runAs.gid) await chownTree(dir, runAs.uid, runAs.gid);
    await passThrough(stateDir);
  }
  return dir;
}

/**
 * The app's releases (`releases/<env>/<app>`): owned by the engine, group the app's, 0750. Without a user, the
 * directory stays as the engine made it.
 */
export async function restrictReleases(stateDir: string, env: string, app: string, runAs: RunAs | undefined): Promise<void> {
  if (!runAs) return;
  const dir = join(stateDir, 'releases', env, app);
  await chown(dir, process.getuid?.() ?? 0, runAs.gid);
  await chmod(dir, 0o750);
  await passThrough(stateDir);
  await addSearch(join(stateDir, 'releases'));
  await addSearch(join(stateDir, 'releases', env));
}

/**
 * Decrypted secret files (`$KEELSON_SECRETS_DIR`) readable by the app's user only: the files and their directories
 * become the user's; the directories above are passed through, never listed.
 */
export async function grantSecretFiles(stateDir: string, filesDir: string, runAs: RunAs | undefined): Promise<void> {
  if (!runAs) return;
  await passThrough(stateDir);
  const secrets = join(stateDir, 'secrets');
  // <state>/secrets/<env>/<app>/<template>/files: every level below the state dir is passed through.
  let d = filesDir;
  const parents: string[] = [];
  while (d.startsWith(`${secrets}/`)) {
    d = join(d, '..');
    parents.push(d);
  }
  for (const p of parents) await addSearch(p);
  await chownTree(filesDir, runAs.uid, runAs.gid);
}

/** What app users may pass through (to their own directories below). */
const passable = new Set(['data', 'releases', 'secrets']);

/**
 * The state dir lets app users through to their directories (o+x) and nothing else: it cannot be listed, and its
 * other entries (the store, logs, checkouts, artifacts, the proxy's socket) lose every permission for others.
 */
async function passThrough(stateDir: string): Promise<void> {
  const st = await stat(stateDir);
  const mode = (st.mode & 0o7770) | 0o001;
  if ((st.mode & 0o7777) !== mode) await chmod(stateDir, mode);
  for (const name of await readdir(stateDir)) {
    if (passable.has(name)) continue;
    const entry = await lstat(join(stateDir, name)).catch(() => undefined);
    if (entry && !entry.isSymbolicLink() && (entry.mode & 0o007) !== 0) await chmod(join(stateDir, name), entry.mode & 0o7770);
  }
}

async function addSearch(dir: string): Promise<void> {
  const st = await stat(dir);
  if ((st.mode & 0o001) === 0) await chmod(dir, (st.mode & 0o7777) | 0o001);
}

async function chownTree(path: string, uid: number, gid: number): Promise<void> {
  const st = await lstat(path);
  if (st.isSymbolicLink()) return;
  await chown(path, uid, gid);
  if (st.isDirectory()) for (const name of await readdir(path)) await chownTree(join(path, name), uid, gid);
}
