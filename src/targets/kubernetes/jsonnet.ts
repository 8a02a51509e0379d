/**
 * Jsonnet manifests: a directory of `.jsonnet` files (`.libsonnet` files are libraries), each top-level `.jsonnet`
 * file evaluated by the go-jsonnet CLI (`$KEELSON_JSONNET_BIN`, else `jsonnet` on PATH) with the App's top-level
 * arguments, external variables and library directories. Argv only, never a shell; run in the repository root with
 * repository-relative paths, so Jsonnet's own `file:line:col` messages name files of the repository.
 */
import { execFile } from 'node:child_process';
import { readdir, readFile, realpath } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { JsonnetParams, JsonnetValue } from '../../core/model.js';
import { TerminalError } from '../../core/errors.js';
import type { KObject } from './objects.js';
import { renders } from './limit.js';

const run = promisify(execFile);

/** Whether a directory's entries make it a Jsonnet directory (as Argo CD detects it: any `*.jsonnet` file). */
export function isJsonnetDir(entries: string[]): boolean {
  return entries.some((e) => e.endsWith('.jsonnet') && !e.startsWith('.'));
}

/** The jsonnet argv for one file: parameters as flags (`name=value`, never a bare name, which reads the environment). */
export function jsonnetArgs(params: JsonnetParams | undefined, file: string, jpaths: string[]): string[] {
  const args: string[] = [];
  const flag = (str: string, code: string, name: string, v: JsonnetValue) =>
    typeof v === 'string' ? args.push(str, `${name}=${v}`) : args.push(code, `${name}=${v.code}`);
  for (const [name, v] of Object.entries(params?.tlas ?? {}).sort(byKey)) flag('--tla-str', '--tla-code', name, v);
  for (const [name, v] of Object.entries(params?.extVars ?? {}).sort(byKey)) flag('--ext-str', '--ext-code', name, v);
  for (const dir of jpaths) args.push('-J', dir);
  args.push('--', file);
  return args;
}

function byKey(a: [string, unknown], b: [string, unknown]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
}

/**
 * The evaluated JSON of one file → manifests. Accepted, as Argo CD accepts them: an array of objects, a single
 * object, a `List` (its items); and, as `jsonnet -m` / kube-prometheus write them, an object whose every value is a
 * manifest (or an array of them). Nested arrays are flattened; nulls are skipped.
 */
export function jsonnetObjects(value: unknown, file: string): KObject[] {
  const out: KObject[] = [];
  const add = (v: unknown, where: string): void => {
    if (v === null) return;
    if (Array.isArray(v)) return v.forEach((item, i) => add(item, `${where}[${i}]`));
    if (typeof v !== 'object') throw new TerminalError(`${file}: output ${where} is ${typeof v}, not a Kubernetes object; a .jsonnet file must evaluate to an object, an array of objects, a List, or an object of objects`);
    const o = v as Record<string, unknown>;
    if (typeof o.kind === 'string' && o.kind.endsWith('List') && Array.isArray(o.items)) return (o.items as unknown[]).forEach((item, i) => add(item, `${where}.items[${i}]`));
    if (typeof o.apiVersion === 'string' && typeof o.kind === 'string') return void out.push(o as KObject);
    const values = Object.entries(o);
    if (where === '(top level)' && values.length > 0 && values.every(([, x]) => x !== null && typeof x === 'object')) {
      return values.forEach(([k, x]) => add(x, `.${k}`));
    }
    throw new TerminalError(`${file}: output ${where} has no apiVersion and kind; a .jsonnet file must evaluate to Kubernetes objects (an object, an array of objects, a List, or an object of objects)`);
  };
  add(value, '(top level)');
  return out;
}

/** `jsonnet` as configured: `$KEELSON_JSONNET_BIN`, else on PATH. */
export function jsonnetBin(): string {
  return process.env.KEELSON_JSONNET_BIN || 'jsonnet';
}

/**
 * Every top-level `.jsonnet` file of `dir` (sorted) evaluated → objects. `root` is the repository root: the working
 * directory, and what paths in messages are relative to. The directory itself is a library directory too.
 */
export async function renderJsonnet(dir: string, root: string, params: JsonnetParams | undefined): Promise<KObject[]> {
  const files = (await readdir(dir, { withFileTypes: true }))
    .filter((e) => e.isFile() && e.name.endsWith('.jsonnet') && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
  const relDir = relative(root, dir) || '.';
  const jpaths = [relDir, ...(params?.libs ?? [])];
  await checkImports(files.map((f) => (relDir === '.' ? f : join(relDir, f))), root, jpaths);
  const out: KObject[] = [];
  for (const name of files) {
    const file = relDir === '.' ? name : join(relDir, name);
    const stdout = await evaluate(file, jsonnetArgs(params, file, jpaths), root);
    let value: unknown;
    try {
      value = JSON.parse(stdout);
    } catch (err) {
      throw new TerminalError(`${file}: jsonnet output is not JSON: ${(err as Error).message}`);
    }
    out.push(...jsonnetObjects(value, file));
  }
  return out;
}

async function evaluate(file: string, args: string[], cwd: string): Promise<string> {
  const bin = jsonnetBin();
  // JSONNET_PATH would add library directories the repository does not declare.
  const { JSONNET_PATH: _p, ...env } = process.env;
  try {
    const { stdout } = await renders.run(() => run(bin, args, { cwd, env, maxBuffer: 256 * 1024 * 1024, timeout: 120_000 }));
    return stdout;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string; killed?: boolean };
    if (e.code === 'ENOENT') {
      throw new TerminalError(
        `${file}: this manifests directory holds .jsonnet files, but the jsonnet CLI${process.env.KEELSON_JSONNET_BIN ? ` (${bin}, from KEELSON_JSONNET_BIN)` : ''} was not found; install go-jsonnet (\`go install github.com/google/go-jsonnet/cmd/jsonnet@latest\`) or set KEELSON_JSONNET_BIN to its path`,
      );
    }
    if (e.killed) throw new TerminalError(`${file}: jsonnet did not finish within 120 s`);
    throw new TerminalError(formatJsonnetError(file, e.stderr ?? e.message));
  }
}

/**
 * Jsonnet's error text → `file:line:col: jsonnet: message`, placed at the first position Jsonnet names (the
 * innermost frame of a runtime error, the token of a syntax error); the first lines of its own message follow.
 */
export function formatJsonnetError(file: string, stderr: string): string {
  const text = stderr.trim();
  const pos = /([^\s:()]+\.(?:jsonnet|libsonnet|json)):(?:\()?(\d+):(\d+)/.exec(text);
  const lines = text.split('\n').map((l) => l.trimEnd());
  const head = lines[0]
    .replace(/^(RUNTIME|STATIC) ERROR:\s*/, '')
    .replace(/^[^\s:()]+\.(?:jsonnet|libsonnet|json):\S*\s*/, '')
    .trim();
  const kind = /^STATIC ERROR/.test(lines[0]) || (pos && lines[0].startsWith(pos[1])) ? 'syntax error' : 'error';
  const where = pos ? `${pos[1]}:${pos[2]}:${pos[3]}` : file;
  return `${where}: jsonnet ${kind}: ${head || lines.slice(1).find((l) => l.trim()) || 'evaluation failed'}`;
}

/** `import "x"`, `importstr 'x'`, `importbin @"x"`: Jsonnet allows only string literals there. */
const IMPORT = /\bimport(str|bin)?\s*(@?)(["'])((?:\\.|(?!\3)[^\\\n])*)\3/g;
const TEXT_BLOCK_IMPORT = /\bimport(?:str|bin)?\s*\|\|\|/;

/**
 * Paths from the ops repository stay inside it: every file an import can name (next to the importing file, or in any
 * library directory, whichever the CLI picks first), followed through imported Jsonnet, must resolve (symlinks too)
 * inside the repository. An import that exists nowhere is left to Jsonnet's own error.
 */
export async function checkImports(files: string[], root: string, jpaths: string[]): Promise<void> {
  const realRoot = await realpath(root);
  const seen = new Set<string>();
  const queue = [...files];
  while (queue.length) {
    const file = queue.shift()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = await readFile(join(root, file), 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    const at = (offset: number) => {
      const before = text.slice(0, offset);
      return `${file}:${before.split('\n').length}:${offset - before.lastIndexOf('\n')}`;
    };
    const block = TEXT_BLOCK_IMPORT.exec(text);
    if (block) throw new TerminalError(`${at(block.index)}: jsonnet import of a text block: Keelson checks that imports stay inside the repository and needs a quoted path`);
    for (const m of text.matchAll(IMPORT)) {
      const path = m[2] === '@' ? m[4].replaceAll(`${m[3]}${m[3]}`, m[3]) : unescape(m[4]);
      if (isAbsolute(path)) throw new TerminalError(`${at(m.index!)}: jsonnet import "${path}" is an absolute path; imports stay inside the repository`);
      for (const base of [dirname(file), ...jpaths]) {
        const candidate = resolve(root, base, path);
        const real = await realpath(candidate).catch(() => undefined);
        if (real === undefined) continue;
        const rel = relative(realRoot, real);
        if (rel.startsWith('..') || isAbsolute(rel)) throw new TerminalError(`${at(m.index!)}: jsonnet import "${path}" resolves to ${real}, outside the repository; imports stay inside the repository`);
        if (!m[1]) queue.push(rel);
      }
    }
  }
}

function unescape(s: string): string {
  return s.replace(/\\(.)/g, (_, c: string) => ({ n: '\n', t: '\t', '\\': '\\', '"': '"', "'": "'", '/': '/' })[c] ?? c);
}
