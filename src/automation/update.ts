/**
 * Version automation (like Flux's image automation): an App's `spec.updatePolicy` names a semver range and where new
 * versions appear (git tags of the app repository, or a directory of releases); every environment that sets
 * `autoUpdate: true` for the app gets the newest matching version, as one commit per app naming old and new versions.
 */
import { readdir } from 'node:fs/promises';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import { gt, maxSatisfying, valid, validRange } from 'semver';
import { ExitError } from '../core/errors.js';
import type { DesiredState } from '../core/model.js';
import type { FileChange, WorkingCopy } from '../opsrepo/working-copy.js';
import { parseFile, setStrings } from '../opsrepo/yaml-edit.js';
import { git } from '../source/git.js';

export interface UpdateSource {
  gitTags?: string;
  directory?: string;
}

export interface AppPolicy {
  app: string;
  semver: string;
  source: UpdateSource;
  /** Absolute path of the App's file (relative sources are resolved against its directory). */
  file: string;
  /** Basename of the artifact path or URL, e.g. `web-{version}` or `web-{version}.tar.gz`. */
  artifactName: string;
}

export interface UpdateChange {
  env: string;
  from: string;
  to: string;
}

export interface AppUpdate {
  app: string;
  semver: string;
  to: string;
  changes: UpdateChange[];
}

/** Versions a source offers (valid semver only, without a leading v). */
export async function listVersions(p: AppPolicy): Promise<string[]> {
  if (p.source.gitTags) {
    const repo = /^[a-z][a-z0-9+.-]*:\/\//i.test(p.source.gitTags) || isAbsolute(p.source.gitTags) ? p.source.gitTags : resolve(dirname(p.file), p.source.gitTags);
    const out = await git(['ls-remote', '--tags', '--refs', repo], { cwd: dirname(p.file) });
    return out
      .split('\n')
      .map((l) => l.split('\t')[1]?.replace(/^refs\/tags\//, '') ?? '')
      .map((t) => valid(t.replace(/^v/, '')))
      .filter((v): v is string => v !== null);
  }
  const dir = resolve(dirname(p.file), p.source.directory!);
  const [prefix, suffix] = p.artifactName.includes('{version}') ? p.artifactName.split('{version}') : ['', ''];
  const entries = await readdir(dir).catch((err) => {
    throw new ExitError(1, `App "${p.app}": updatePolicy directory ${dir} cannot be read: ${(err as Error).message}`);
  });
  return entries
    .filter((e) => e.startsWith(prefix) && e.endsWith(suffix) && e.length > prefix.length + suffix.length)
    .map((e) => valid(e.slice(prefix.length, e.length - suffix.length)))
    .filter((v): v is string => v !== null);
}

/** The newest version in `range`, if it is newer than `current`. */
export function newerVersion(versions: string[], range: string, current: string): string | null {
  const best = maxSatisfying(versions, range);
  if (!best) return null;
  const cur = valid(current.replace(/^v/, ''));
  return cur === null || gt(best, cur) ? best : null;
}

/** Every App with an updatePolicy, read from the working copy. */
export async function policies(wc: WorkingCopy): Promise<AppPolicy[]> {
  const out: AppPolicy[] = [];
  for (const loc of (await wc.locate()).filter((l) => l.kind === 'App')) {
    const doc = parseFile(await wc.read(loc.file)).docs[loc.index];
    const policy = doc.getIn(['spec', 'updatePolicy']) as unknown;
    if (!policy) continue;
    const js = (doc.toJS() as { spec: { updatePolicy: { semver: string; source: UpdateSource }; artifact?: { path?: string; url?: string } } }).spec;
    if (!validRange(js.updatePolicy.semver)) throw new ExitError(1, `App "${loc.name}": updatePolicy.semver "${js.updatePolicy.semver}" is not a semver range (e.g. "^1.2")`);
    const template = js.artifact?.path ?? js.artifact?.url ?? '{version}';
    out.push({ app: loc.name, semver: js.updatePolicy.semver, source: js.updatePolicy.source, file: loc.file, artifactName: basename(template) });
  }
  return out;
}

/** Environments that opted in (`autoUpdate: true`) per app. */
export async function optedIn(wc: WorkingCopy): Promise<Map<string, string[]>> {
  const m = new Map<string, string[]>();
  for (const loc of (await wc.locate()).filter((l) => l.kind === 'Environment')) {
    const apps = parseFile(await wc.read(loc.file)).docs[loc.index].toJS()?.spec?.apps ?? {};
    for (const [app, ov] of Object.entries(apps as Record<string, { autoUpdate?: boolean } | null>)) {
      if (ov?.autoUpdate === true) m.set(app, [...(m.get(app) ?? []), loc.name]);
    }
  }
  return m;
}

export async function planUpdates(wc: WorkingCopy, desired: DesiredState): Promise<AppUpdate[]> {
  const envsOf = await optedIn(wc);
  const updates: AppUpdate[] = [];
  for (const p of await policies(wc)) {
    const envs = envsOf.get(p.app) ?? [];
    if (envs.length === 0) continue;
    const versions = await listVersions(p);
    const changes: UpdateChange[] = [];
    let to: string | null = null;
    for (const env of envs.sort()) {
      const current = desired.environments.find((e) => e.name === env)?.apps.find((a) => a.name === p.app)?.version;
      if (current === undefined) continue;
      const next = newerVersion(versions, p.semver, current);
      if (!next) continue;
      to = next;
      changes.push({ env, from: current, to: next });
    }
    if (to) updates.push({ app: p.app, semver: p.semver, to, changes });
  }
  return updates;
}

export function updateMessage(u: AppUpdate): string {
  const froms = [...new Set(u.changes.map((c) => c.from))].join(', ');
  return `Update ${u.app} ${froms} → ${u.to} in ${u.changes.map((c) => c.env).join(', ')}\n\n${u.changes.map((c) => `${c.env}: ${c.from} -> ${c.to}`).join('\n')}\n\nPolicy: ${u.semver}\nKeelson-Update: ${u.app} ${u.to}\n`;
}

/** The file edits of one app's update: each opted-in Environment's `apps.<app>.version`. */
export async function updateChanges(wc: WorkingCopy, u: AppUpdate): Promise<FileChange[]> {
  const files = new Map<string, string>();
  for (const c of u.changes) {
    const loc = await wc.locateEnvironment(c.env);
    const text = files.get(loc.file) ?? (await wc.read(loc.file));
    files.set(loc.file, setStrings(parseFile(text), loc.index, [{ path: ['spec', 'apps', u.app, 'version'], value: c.to }]));
  }
  return [...files].map(([path, content]) => ({ path, content }));
}

/** One commit per app; returns the commit shas. */
export async function writeUpdate(wc: WorkingCopy, u: AppUpdate, o: { branch?: string; push?: boolean } = {}): Promise<string> {
  return wc.commit(await updateChanges(wc, u), { message: updateMessage(u), branch: o.branch, push: o.push });
}
