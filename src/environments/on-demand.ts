/**
 * On-demand environments: a copy of an existing Environment document, committed to the ops repository with its
 * owner and expiry, deployed like any other, stopped when it expires and removed by commit.
 */
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { existsSync } from 'node:fs';
import { ExitError } from '../core/errors.js';
import type { DocLocation, WorkingCopy } from '../opsrepo/working-copy.js';
import { ensureMaps, parseFile, quoted, removeDocument } from '../opsrepo/yaml-edit.js';
import { NAME_PATTERN } from '../render/schema.js';
import { isExpired } from './expiry.js';

export const OWNER = 'keelson.dev/owner';
export const CREATED_AT = 'keelson.dev/created-at';
export const CREATED_FROM = 'keelson.dev/created-from';

export interface CreateOptions {
  name: string;
  from: string;
  /** app → version overrides. */
  set: Record<string, string>;
  ttlMs?: number;
  owner: string;
  /** "port": free public ports are assigned; "host": apps are reached as app.env.localhost on the source's ports. */
  routing: 'port' | 'host';
  /** First public port tried when assigning ports. Default 20000. */
  portBase?: number;
  now?: Date;
}

export interface CreatePlan {
  file: string;
  content: string;
  ports: Record<string, number>;
  expiresAt?: string;
}

/** Builds the new Environment file (not yet written). */
export async function planCreate(wc: WorkingCopy, o: CreateOptions): Promise<CreatePlan> {
  if (!NAME_PATTERN.test(o.name) || o.name.length > 63) throw new ExitError(2, `invalid environment name "${o.name}": lowercase letters, digits and "-"`);
  const { desired, issues } = await wc.render();
  if (issues.length) throw new ExitError(1, `the ops repository has problems; fix them first (keelson validate):\n${issues.map((i) => `${i.file}:${i.line}:${i.col}: ${i.message}`).join('\n')}`);
  if (desired.environments.some((e) => e.name === o.name)) throw new ExitError(1, `environment "${o.name}" already exists`);
  const source = desired.environments.find((e) => e.name === o.from);
  if (!source) throw new ExitError(1, `no Environment named "${o.from}" (environments: ${desired.environments.map((e) => e.name).join(', ')})`);
  for (const app of Object.keys(o.set)) {
    if (!source.apps.some((a) => a.name === app)) throw new ExitError(2, `--set ${app}=…: environment "${o.from}" does not run app "${app}"`);
  }
  const loc = await wc.locateEnvironment(o.from);
  const srcFile = parseFile(await wc.read(loc.file));
  const doc = srcFile.docs[loc.index].clone();
  const now = o.now ?? new Date();
  doc.commentBefore = ` On-demand environment created by \`keelson env create ${o.name} --from ${o.from}\`; remove with \`keelson env destroy ${o.name}\`.`;
  if (doc.directives) doc.directives.docStart = null;
  if (doc.contents && 'commentBefore' in doc.contents) doc.contents.commentBefore = undefined;
  doc.setIn(['metadata', 'name'], o.name);
  ensureMaps(doc, ['metadata', 'annotations']);
  doc.setIn(['metadata', 'annotations', OWNER], quoted(o.owner));
  doc.setIn(['metadata', 'annotations', CREATED_AT], quoted(now.toISOString()));
  doc.setIn(['metadata', 'annotations', CREATED_FROM], quoted(o.from));
  const expiresAt = o.ttlMs !== undefined ? new Date(now.getTime() + o.ttlMs).toISOString() : undefined;
  if (expiresAt) doc.setIn(['spec', 'expiresAt'], quoted(expiresAt));
  else doc.deleteIn(['spec', 'expiresAt']);
  ensureMaps(doc, ['spec', 'apps']);
  for (const [app, version] of Object.entries(o.set)) {
    ensureMaps(doc, ['spec', 'apps', app]);
    doc.setIn(['spec', 'apps', app, 'version'], quoted(version));
  }
  const ports: Record<string, number> = {};
  if (o.routing === 'host') {
    doc.setIn(['spec', 'routing'], 'host');
  } else {
    doc.deleteIn(['spec', 'routing']);
    const claimed = new Set(desired.environments.flatMap((e) => e.apps.map((a) => a.port)).filter((p): p is number => p !== undefined));
    let next = o.portBase ?? 20_000;
    for (const app of source.apps) {
      if (app.port === undefined) continue;
      next = await nextFreePort(next, claimed);
      ports[app.name] = next;
      claimed.add(next);
      ensureMaps(doc, ['spec', 'apps', app.name]);
      doc.setIn(['spec', 'apps', app.name, 'port'], next);
    }
  }
  const file = join(dirname(loc.file), `${o.name}.yaml`);
  if (existsSync(file)) throw new ExitError(1, `${wc.rel(file)} already exists; choose another name`);
  return { file, content: doc.toString({ lineWidth: 0 }), ports, expiresAt };
}

async function nextFreePort(from: number, claimed: Set<number>): Promise<number> {
  for (let p = from; p < 65_535; p++) if (!claimed.has(p) && (await canListen(p))) return p;
  throw new ExitError(1, `no free port at or above ${from}`);
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

export interface EnvInfo {
  name: string;
  file: string;
  owner: string | null;
  createdAt: string | null;
  createdFrom: string | null;
  expiresAt: string | null;
  expired: boolean;
  onDemand: boolean;
}

/** Every environment with its on-demand metadata. */
export async function listEnvironments(wc: WorkingCopy, now = Date.now()): Promise<EnvInfo[]> {
  const out: EnvInfo[] = [];
  for (const loc of (await wc.locate()).filter((l) => l.kind === 'Environment')) {
    const doc = parseFile(await wc.read(loc.file)).docs[loc.index];
    const ann = (k: string) => {
      const v = doc.getIn(['metadata', 'annotations', k]);
      return typeof v === 'string' ? v : null;
    };
    const raw = doc.getIn(['spec', 'expiresAt']);
    const expiresAt = typeof raw === 'string' ? new Date(raw).toISOString() : null;
    out.push({
      name: loc.name,
      file: wc.rel(loc.file),
      owner: ann(OWNER),
      createdAt: ann(CREATED_AT),
      createdFrom: ann(CREATED_FROM),
      expiresAt,
      expired: expiresAt !== null && isExpired({ expiresAt }, now),
      onDemand: ann(OWNER) !== null || expiresAt !== null,
    });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : 1));
}

/** The file changes that remove these environments' documents (a file with nothing else left is deleted). */
export async function removalChanges(wc: WorkingCopy, locs: DocLocation[]): Promise<{ path: string; content: string | null }[]> {
  const byFile = new Map<string, DocLocation[]>();
  for (const l of locs) byFile.set(l.file, [...(byFile.get(l.file) ?? []), l]);
  const changes: { path: string; content: string | null }[] = [];
  for (const [path, list] of byFile) {
    let text = await wc.read(path);
    // Highest index first, so earlier indexes stay valid.
    for (const l of list.sort((a, b) => b.index - a.index)) text = removeDocument(parseFile(text), l.index);
    changes.push({ path, content: text.trim() === '' ? null : text });
  }
  return changes;
}

export function formatAge(fromIso: string | null, now = Date.now()): string {
  if (!fromIso) return '-';
  return formatSpan(now - Date.parse(fromIso));
}

export function formatSpan(ms: number): string {
  const neg = ms < 0;
  let s = Math.floor(Math.abs(ms) / 1000);
  const d = Math.floor(s / 86_400);
  s -= d * 86_400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  const text = d ? `${d}d${h}h` : h ? `${h}h${m}m` : m ? `${m}m` : `${s % 60}s`;
  return neg ? `-${text}` : text;
}

export function formatEnvList(list: EnvInfo[], now = Date.now()): string {
  const rows = [['NAME', 'OWNER', 'AGE', 'EXPIRES', 'FROM', 'FILE']];
  for (const e of list) {
    const expires = e.expiresAt ? (e.expired ? `Expired (${formatSpan(now - Date.parse(e.expiresAt))} ago)` : `in ${formatSpan(Date.parse(e.expiresAt) - now)}`) : '-';
    rows.push([e.name, e.owner ?? '-', formatAge(e.createdAt, now), expires, e.createdFrom ?? '-', e.file]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

