/**
 * Files ↔ SOPS trees for the formats Keelson reads: YAML (`stores/yaml`), JSON (`stores/json`) and dotenv
 * (`stores/dotenv`). Loading keeps key order and comments; emitting writes what sops writes closely enough that
 * sops reads it back (values, paths and order are what the MAC and AAD depend on; layout is not).
 */
import { extname } from 'node:path';
import { Document, isAlias, isMap, isScalar, isSeq, LineCounter, parseAllDocuments, Scalar as YamlScalar, YAMLMap, YAMLSeq, type Node } from 'yaml';
import { Branch, Comment, SopsTime, formatFloat, type Scalar, type TreeValue } from './sops-tree.js';

export type SopsFormat = 'yaml' | 'json' | 'dotenv';

/** The format sops would pick from the file name (`.env` → dotenv, `.json` → json, otherwise yaml). */
export function formatOf(file: string): SopsFormat {
  const ext = extname(file).toLowerCase();
  const base = file.split('/').pop() ?? file;
  if (ext === '.json') return 'json';
  if (ext === '.env' || base === '.env' || base.startsWith('.env.')) return 'dotenv';
  return 'yaml';
}

/** 1-based line and column in a file. */
export interface TextPosition {
  line: number;
  col: number;
}

/** A file that cannot be parsed; `pos` is where, when the parser says. */
export class FormatError extends Error {
  constructor(message: string, readonly pos?: TextPosition) {
    super(message);
  }
}

/**
 * Where the value at `path` (keys from the top, as decryption errors name it) is written: the deepest mapping
 * entry of the path found, in the first document that has its first key. Undefined when not even that is found.
 */
export function positionOf(text: string, format: SopsFormat, path: readonly string[]): TextPosition | undefined {
  if (!path.length) return undefined;
  if (format === 'dotenv') {
    const i = text.split('\n').findIndex((l) => l.startsWith(`${path[0]}=`));
    return i < 0 ? undefined : { line: i + 1, col: path[0].length + 2 };
  }
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { prettyErrors: false, lineCounter });
  for (const doc of Array.isArray(docs) ? docs : []) {
    let node: unknown = doc.contents;
    let offset: number | undefined;
    for (const key of path) {
      const pair = isMap(node) ? node.items.find((p) => isScalar(p.key) && String(p.key.value) === key) : undefined;
      if (!pair) break;
      offset = (pair.value as Node | null)?.range?.[0] ?? (pair.key as Node).range?.[0];
      node = pair.value;
    }
    if (offset !== undefined) return lineCounter.linePos(offset);
  }
  return undefined;
}

export function loadPlain(text: string, format: SopsFormat): Branch[] {
  if (format === 'json') return [loadJson(text)];
  if (format === 'dotenv') return [loadDotenv(text)];
  return loadYaml(text);
}

export function emitPlain(branches: Branch[], format: SopsFormat): string {
  if (format === 'json') return emitJson(branches[0] ?? new Branch());
  if (format === 'dotenv') return emitDotenv(branches[0] ?? new Branch());
  return emitYaml(branches);
}

// ---- YAML ------------------------------------------------------------------------------------

function commentLines(text: string | null | undefined, inline = false): Comment[] {
  if (!text) return [];
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => new Comment(l, inline));
}

function loadYaml(text: string): Branch[] {
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { intAsBigInt: true, uniqueKeys: true, prettyErrors: false, lineCounter });
  const list = Array.isArray(docs) ? docs : [];
  const out: Branch[] = [];
  for (const doc of list) {
    if (doc.errors.length) throw new FormatError(`invalid YAML: ${doc.errors[0].message.split('\n')[0]}`, lineCounter.linePos(doc.errors[0].pos[0]));
    const branch = new Branch();
    const push = (cs: Comment[]) => branch.items.push(...cs.map((c) => ({ key: c, value: null })));
    push(commentLines(doc.commentBefore));
    const contents = doc.contents;
    if (contents === null || (isScalar(contents) && contents.value === null)) {
      push(commentLines(doc.comment));
      out.push(branch);
      continue;
    }
    if (!isMap(contents)) throw new FormatError('a YAML document must be a mapping at the top level');
    yamlMapInto(contents, branch, doc);
    push(commentLines(doc.comment));
    out.push(branch);
  }
  return out;
}

/** Aliases one document may resolve: an alias of an alias of… expands exponentially (a "billion laughs" file). */
const MAX_YAML_ALIASES = 1000;
const aliasCounts = new WeakMap<Document.Parsed, number>();

function resolveAlias(node: Node, doc: Document.Parsed): Node | null {
  const n = (aliasCounts.get(doc) ?? 0) + 1;
  if (n > MAX_YAML_ALIASES) throw new FormatError(`the YAML resolves more than ${MAX_YAML_ALIASES} aliases; write the values out instead`);
  aliasCounts.set(doc, n);
  return ((node as unknown as { resolve(d: Document.Parsed): Node | undefined }).resolve(doc) ?? null) as Node | null;
}

function yamlMapInto(map: YAMLMap, branch: Branch, doc: Document.Parsed): void {
  const push = (cs: Comment[]) => branch.items.push(...cs.map((c) => ({ key: c, value: null })));
  push(commentLines(map.commentBefore));
  for (const pair of map.items) {
    const keyNode = pair.key as Node | null;
    push(commentLines(keyNode?.commentBefore));
    const key = isScalar(keyNode) ? keyNode.value : keyNode;
    if (typeof key !== 'string') throw new FormatError(`only string keys are supported, found ${JSON.stringify(String(key))}`);
    let valueNode = pair.value as Node | null;
    if (isAlias(valueNode)) valueNode = resolveAlias(valueNode, doc);
    const scalarLike = valueNode === null || isScalar(valueNode);
    if (scalarLike) {
      push(commentLines(valueNode?.commentBefore));
      push(commentLines(valueNode?.comment ?? keyNode?.comment, true));
    }
    branch.items.push({ key, value: yamlValue(valueNode, doc) });
  }
  push(commentLines(map.comment));
}

function yamlValue(node: Node | null, doc: Document.Parsed): TreeValue {
  if (node === null) return null;
  if (isAlias(node)) return yamlValue(resolveAlias(node, doc), doc);
  if (isMap(node)) {
    const b = new Branch();
    yamlMapInto(node, b, doc);
    return b;
  }
  if (isSeq(node)) {
    const list: TreeValue[] = [...commentLines(node.commentBefore)];
    for (const item of node.items as (Node | null)[]) {
      list.push(...commentLines(item?.commentBefore));
      if (isScalar(item)) list.push(...commentLines(item.comment, true));
      list.push(yamlValue(item, doc));
    }
    list.push(...commentLines(node.comment));
    return list;
  }
  if (isScalar(node)) return yamlScalar(node.value);
  return null;
}

function yamlScalar(v: unknown): Scalar {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string' || typeof v === 'bigint' || typeof v === 'boolean') return v;
  if (typeof v === 'number') return Number.isInteger(v) ? v : v; // floats (ints are bigint with intAsBigInt)
  if (v instanceof Uint8Array) return v;
  if (v instanceof Date) return new SopsTime(v.toISOString());
  return String(v);
}

function emitYaml(branches: Branch[]): string {
  return branches
    .map((b) => {
      // YAML 1.1 rules for quoting: sops (go-yaml) reads an unquoted 2021-04-06T09:07:05Z as a time, yes/on as bools.
      const doc = new Document(null, { version: '1.1' });
      const { node, head, tail } = yamlMapOf(b, doc);
      doc.contents = node;
      if (head.length) doc.commentBefore = head.join('\n');
      if (tail.length) doc.comment = tail.join('\n');
      return doc.toString({ indent: 4, lineWidth: 0 });
    })
    .join('---\n');
}

/** A branch as a YAML map; comments that precede the first key or follow the last one are returned apart. */
function yamlMapOf(b: Branch, doc: Document): { node: YAMLMap; head: string[]; tail: string[] } {
  const map = new YAMLMap();
  let before: string[] = [];
  let inline: string[] = [];
  let head: string[] | undefined;
  for (const item of b.items) {
    if (item.key instanceof Comment) {
      (item.key.inline ? inline : before).push(item.key.value);
      continue;
    }
    const key = new YamlScalar(item.key);
    if (head === undefined) head = before;
    else if (before.length) key.commentBefore = before.join('\n');
    before = [];
    const value = yamlNodeOf(item.value, doc);
    if (inline.length) {
      if (value instanceof YamlScalar) value.comment = inline.join('\n');
      else key.comment = inline.join('\n');
      inline = [];
    }
    map.items.push(doc.createPair(key, value) as never);
  }
  return { node: map, head: head ?? [], tail: [...before, ...inline] };
}

function yamlNodeOf(v: TreeValue, doc: Document): Node {
  if (v instanceof Branch) {
    const { node, head, tail } = yamlMapOf(v, doc);
    if (head.length) node.commentBefore = head.join('\n');
    if (tail.length) node.comment = tail.join('\n');
    return node;
  }
  if (Array.isArray(v)) {
    const seq = new YAMLSeq();
    let before: string[] = [];
    let inline: string[] = [];
    for (const x of v) {
      if (x instanceof Comment) {
        (x.inline ? inline : before).push(x.value);
        continue;
      }
      const n = yamlNodeOf(x, doc);
      if (before.length) n.commentBefore = before.join('\n');
      if (inline.length) n.comment = inline.join('\n');
      before = [];
      inline = [];
      seq.items.push(n);
    }
    if (before.length || inline.length) seq.comment = [...before, ...inline].join('\n');
    return seq;
  }
  if (v instanceof SopsTime) return new YamlScalar(v.text);
  if (v instanceof Comment) return new YamlScalar(v.value);
  if (typeof v === 'number' && Number.isInteger(v)) {
    // A float that happens to be whole stays a float (sops writes 1.0 back as 1, which reads as an int).
    const s = new YamlScalar(v);
    s.minFractionDigits = 1;
    return s;
  }
  return new YamlScalar(v);
}

// ---- JSON ------------------------------------------------------------------------------------

/** A JSON reader that keeps key order (JSON.parse moves integer-like keys first) and tells ints from floats. */
function loadJson(text: string): Branch {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i++;
  };
  const fail = (what: string): never => {
    const before = text.slice(0, i);
    const line = before.split('\n').length;
    const col = i - before.lastIndexOf('\n');
    throw new FormatError(`invalid JSON at line ${line}, column ${col}: ${what}`, { line, col });
  };
  const value = (): TreeValue => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const b = new Branch();
      const seen = new Set<string>();
      ws();
      if (text[i] === '}') {
        i++;
        return b;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a string key');
        const key = str();
        if (seen.has(key)) fail(`duplicate key ${JSON.stringify(key)}`);
        seen.add(key);
        ws();
        if (text[i] !== ':') fail('expected ":"');
        i++;
        b.items.push({ key, value: value() });
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return b;
        }
        fail('expected "," or "}"');
      }
    }
    if (c === '[') {
      i++;
      const list: TreeValue[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return list;
      }
      for (;;) {
        list.push(value());
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return list;
        }
        fail('expected "," or "]"');
      }
    }
    if (c === '"') return str();
    for (const [word, v] of [['true', true], ['false', false], ['null', null]] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    const m = /^-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (!m) return fail('unexpected character');
    i += m[0].length;
    if (!m[1] && !m[2]) {
      const n = BigInt(m[0]);
      // sops: integers within int64 are ints, anything else a float
      if (n >= -(2n ** 63n) && n < 2n ** 63n) return n;
    }
    return Number(m[0]);
  };
  const str = (): string => {
    const m = /^"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/.exec(text.slice(i));
    if (!m) return fail('invalid string');
    i += m[0].length;
    return JSON.parse(m[0]) as string;
  };
  ws();
  if (text[i] !== '{') fail('a JSON secrets file must be an object at the top level (starting with "{")');
  const root = value() as Branch;
  ws();
  if (i < text.length) fail('unexpected text after the top-level object');
  return root;
}

function emitJson(b: Branch): string {
  const enc = (v: TreeValue, ind: string): string => {
    const inner = `${ind}\t`;
    if (v instanceof Branch) {
      const items = v.items.filter((it) => typeof it.key === 'string');
      if (!items.length) return '{}';
      return `{\n${items.map((it) => `${inner}${JSON.stringify(it.key)}: ${enc(it.value, inner)}`).join(',\n')}\n${ind}}`;
    }
    if (Array.isArray(v)) {
      const items = v.filter((x) => !(x instanceof Comment));
      if (!items.length) return '[]';
      return `[\n${items.map((x) => `${inner}${enc(x, inner)}`).join(',\n')}\n${ind}]`;
    }
    if (typeof v === 'bigint') return v.toString();
    if (typeof v === 'number') {
      const s = formatFloat(v);
      return /^-?\d+$/.test(s) ? `${s}.0` : Number.isFinite(v) ? s : 'null';
    }
    if (v instanceof SopsTime) return JSON.stringify(v.text);
    if (v instanceof Uint8Array) return JSON.stringify(Buffer.from(v).toString('utf8'));
    if (v instanceof Comment) return JSON.stringify(v.value);
    return JSON.stringify(v);
  };
  return `${enc(b, '')}\n`;
}

// ---- dotenv ----------------------------------------------------------------------------------

function loadDotenv(text: string): Branch {
  const b = new Branch();
  for (const [i, line] of text.split('\n').entries()) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      b.items.push({ key: new Comment(line.slice(1)), value: null });
      continue;
    }
    const eq = line.indexOf('=');
    // Never echo the line: it may be a value pasted without its key.
    if (eq < 0) throw new FormatError(`invalid dotenv line ${i + 1}: no "="`, { line: i + 1, col: 1 });
    b.items.push({ key: line.slice(0, eq), value: line.slice(eq + 1).replaceAll('\\n', '\n') });
  }
  return b;
}

function emitDotenv(b: Branch): string {
  let out = '';
  for (const it of b.items) {
    if (it.key instanceof Comment) {
      out += `#${it.key.value}\n`;
      continue;
    }
    if (it.value instanceof Branch || Array.isArray(it.value)) throw new FormatError(`a dotenv file cannot hold nested values (key ${it.key})`);
    const v = it.value;
    const text = typeof v === 'string' ? v.replaceAll('\n', '\\n') : v === null ? '' : typeof v === 'bigint' ? v.toString() : typeof v === 'number' ? formatFloat(v) : typeof v === 'boolean' ? String(v) : v instanceof SopsTime ? v.text : Buffer.from(v as Uint8Array).toString('utf8');
    out += `${it.key}=${text}\n`;
  }
  return out;
}
