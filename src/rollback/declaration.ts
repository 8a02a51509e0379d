/**
 * Restores an app's declaration in an ops repository's working copy as it was at an earlier revision: the App
 * document and the Environment's entry for it. Edits go through the YAML document model, so the rest of each
 * file (other documents, comments, order) stays as it is. Pure apart from reading files and `git show`.
 */
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { isMap, parseAllDocuments, type Document } from 'yaml';
import { API_GROUP } from '../render/schema.js';

const run = promisify(execFile);

export async function git(repo: string, args: string[]): Promise<string> {
  const { stdout } = await run('git', args, { cwd: repo, maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

interface Located {
  file: string;
  index: number;
  doc: Document.Parsed;
}

type Files = Map<string, string>;

const isYaml = (f: string) => /\.ya?ml$/.test(f);

async function workingFiles(repo: string): Promise<Files> {
  const out: Files = new Map();
  const walk = async (dir: string): Promise<void> => {
    for (const d of await readdir(dir, { withFileTypes: true })) {
      if (d.name === '.git' || d.name === 'node_modules') continue;
      const abs = join(dir, d.name);
      if (d.isDirectory()) await walk(abs);
      else if (d.isFile() && isYaml(d.name)) out.set(relative(repo, abs), await readFile(abs, 'utf8'));
    }
  };
  await walk(repo);
  return out;
}

async function filesAt(repo: string, revision: string): Promise<Files> {
  const names = (await git(repo, ['ls-tree', '-r', '--name-only', revision])).split('\n').filter(isYaml);
  const out: Files = new Map();
  for (const n of names) out.set(n, await git(repo, ['show', `${revision}:${n}`]));
  return out;
}

function find(files: Files, kind: 'App' | 'Environment', name: string): Located | undefined {
  for (const [file, text] of files) {
    if (!text.includes(name)) continue;
    const docs = parseAllDocuments(text);
    if (!Array.isArray(docs)) continue;
    for (const [index, doc] of docs.entries()) {
      const apiVersion = doc.get('apiVersion');
      if (typeof apiVersion !== 'string' || !apiVersion.startsWith(`${API_GROUP}/`)) continue;
      if (doc.get('kind') === kind && doc.getIn(['metadata', 'name']) === name) return { file, index, doc };
    }
  }
  return undefined;
}

/** Column of offset `at` in `text`. */
function columnOf(text: string, at: number): number {
  return at - (text.lastIndexOf('\n', at - 1) + 1);
}

/**
 * Replaces a block-map node's text in `text` with another block map's source text, re-indented to the same column:
 * the rest of the file stays byte for byte. Undefined when either is not a block map (the caller re-serializes).
 */
function spliceBlockMap(text: string, cur: unknown, oldText: string, old: unknown): string | undefined {
  if (!isMap(cur) || !isMap(old) || cur.flow || old.flow || !cur.range || !old.range) return undefined;
  const [s, , e] = cur.range;
  const [os, , oe] = old.range;
  const delta = columnOf(text, s) - columnOf(oldText, os);
  const pad = (line: string) => (delta >= 0 ? ' '.repeat(delta) + line : line.slice(Math.min(-delta, line.length - line.trimStart().length)));
  let body = oldText.slice(os, oe);
  if (!body.endsWith('\n') && text.slice(s, e).endsWith('\n')) body += '\n';
  const lines = body.split('\n');
  const shifted = [lines[0], ...lines.slice(1).map((l) => (l.trim() ? pad(l) : l))].join('\n');
  return text.slice(0, s) + shifted + text.slice(e);
}

/** The file's text with document `index` replaced by `doc`'s text. */
function replaceDocument(text: string, index: number, doc: Document.Parsed): string {
  const docs = parseAllDocuments(text) as Document.Parsed[];
  const d = docs[index];
  const start = index === 0 ? 0 : d.range[0];
  let replacement = String(doc);
  if (index > 0 && !replacement.startsWith('---')) replacement = `---\n${replacement}`;
  return text.slice(0, start) + replacement + text.slice(d.range[2]);
}

export interface RestorePlan {
  /** Files to write: path relative to the repository → new content. */
  changes: Map<string, { before: string; after: string }>;
  versionNow: string | null;
  versionThen: string | null;
}

/** Works out the file edits that restore app `app` in environment `env` as of `revision`. */
export async function planRestore(o: { repo: string; env: string; app: string; revision: string }): Promise<RestorePlan> {
  const [now, then] = await Promise.all([workingFiles(o.repo), filesAt(o.repo, o.revision)]);
  const changes: RestorePlan['changes'] = new Map();
  const edit = (file: string, index: number, doc: Document.Parsed) => {
    const before = changes.get(file)?.after ?? now.get(file)!;
    changes.set(file, { before: changes.get(file)?.before ?? now.get(file)!, after: replaceDocument(before, index, doc) });
  };
  /** Puts the node at `path` of document `index` back as it was then: spliced as text when possible. */
  const restore = (file: string, index: number, path: string[], thenText: string, thenNode: unknown, fallback: () => Document.Parsed) => {
    const current = changes.get(file)?.after ?? now.get(file)!;
    const doc = (parseAllDocuments(current) as Document.Parsed[])[index];
    const spliced = spliceBlockMap(current, doc.getIn(path, true), thenText, thenNode);
    if (spliced === undefined) return edit(file, index, fallback());
    changes.set(file, { before: changes.get(file)?.before ?? now.get(file)!, after: spliced });
  };

  const appThen = find(then, 'App', o.app);
  const envThen = find(then, 'Environment', o.env);
  if (!appThen || !envThen) {
    throw new Error(`revision ${o.revision.slice(0, 7)} declares no ${!appThen ? `App "${o.app}"` : `Environment "${o.env}"`}; pick a revision where the app ran (keelson history --env ${o.env} --app ${o.app})`);
  }
  const envNow = find(now, 'Environment', o.env);
  if (!envNow) throw new Error(`the working copy declares no Environment "${o.env}"`);
  const appNow = find(now, 'App', o.app);

  // The App document: its spec as it was then.
  if (appNow) {
    restore(appNow.file, appNow.index, ['spec'], then.get(appThen.file)!, appThen.doc.getIn(['spec'], true), () => {
      const doc = appNow.doc.clone() as Document.Parsed;
      doc.setIn(['spec'], appThen.doc.getIn(['spec'], true));
      return doc;
    });
  } else {
    // Deleted since: bring the whole document back where it was.
    const file = appThen.file;
    const base = now.get(file);
    const text = String(appThen.doc);
    changes.set(file, { before: base ?? '', after: base ? `${base.replace(/\n*$/, '\n')}---\n${text}` : text });
  }

  // The Environment's entry for the app.
  const entryThen = envThen.doc.getIn(['spec', 'apps', o.app], true);
  if (entryThen === undefined && !(envThen.doc.getIn(['spec', 'apps']) as { has?: (k: string) => boolean } | undefined)?.has?.(o.app)) {
    throw new Error(`at ${o.revision.slice(0, 7)} Environment "${o.env}" did not list app "${o.app}"`);
  }
  restore(envNow.file, envNow.index, ['spec', 'apps', o.app], then.get(envThen.file)!, entryThen, () => {
    const doc = envNow.doc.clone() as Document.Parsed;
    if (!isMap(doc.getIn(['spec', 'apps'], true))) doc.setIn(['spec', 'apps'], doc.createNode({}));
    doc.setIn(['spec', 'apps', o.app], entryThen ?? null);
    return doc;
  });

  for (const [file, c] of changes) if (c.before === c.after) changes.delete(file);
  const version = (app: Located | undefined, env: Located | undefined) =>
    ((env?.doc.getIn(['spec', 'apps', o.app, 'version']) ?? app?.doc.getIn(['spec', 'version'])) as string | undefined) ?? null;
  return { changes, versionNow: version(appNow, envNow), versionThen: version(appThen, envThen) };
}
