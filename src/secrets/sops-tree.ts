/**
 * The SOPS data model, as getsops/sops has it (`sops.go`): ordered branches of items, lists, typed scalars and
 * comments as items of their own. Every format (YAML, JSON, dotenv) is read into this tree and written from it, so
 * the walk that encrypts, decrypts and computes the MAC is one piece of code that mirrors sops step by step.
 */

/** A comment line (text after `#`); `inline` when it followed a value on the same line. */
export class Comment {
  constructor(
    public value: string,
    readonly inline = false,
  ) {}
}

/** A `type:time` value, kept as the RFC 3339 text sops wrote. */
export class SopsTime {
  constructor(readonly text: string) {}
}

/** A mapping; keys in document order (the MAC depends on it). A Comment key has a null value. */
export class Branch {
  constructor(public items: TreeItem[] = []) {}

  get(key: string): TreeValue | undefined {
    return this.items.find((i) => i.key === key)?.value;
  }
}

export interface TreeItem {
  key: string | Comment;
  value: TreeValue;
}

/** Scalars: string `str`, bigint `int`, number `float`, boolean `bool`, Uint8Array `bytes`, SopsTime `time`. */
export type Scalar = string | bigint | number | boolean | null | Uint8Array | SopsTime;
export type TreeValue = Scalar | Comment | Branch | TreeValue[];

/** `(value, path, commentsStack)` → replacement value; called for every leaf and comment, like sops' onLeaves. */
export type LeafFn = (value: Scalar | Comment, path: string[], commentsStack: string[][]) => TreeValue;

/** Walks a branch in document order exactly like sops `walkBranch`/`walkSlice`, replacing leaves in place. */
export function walkBranch(branch: Branch, path: string[], stack: string[][], fn: LeafFn): void {
  stack = [...stack, []];
  const top = () => stack[stack.length - 1];
  for (const item of branch.items) {
    if (item.key instanceof Comment) {
      top().push(item.key.value);
      const out = fn(item.key, path, stack);
      item.key = out instanceof Comment ? out : new Comment(String(out), item.key.inline);
      continue;
    }
    const isComment = item.value instanceof Comment;
    if (item.value instanceof Comment) top().push(item.value.value);
    item.value = walkValue(item.value, [...path, item.key], stack, fn);
    if (!isComment) stack[stack.length - 1] = [];
  }
}

function walkSlice(list: TreeValue[], path: string[], stack: string[][], fn: LeafFn): void {
  stack = [...stack, []];
  for (let i = 0; i < list.length; i++) {
    const v = list[i];
    if (v instanceof Comment) stack[stack.length - 1].push(v.value);
    list[i] = walkValue(v, path, stack, fn);
    if (!(v instanceof Comment)) stack[stack.length - 1] = [];
  }
}

function walkValue(v: TreeValue, path: string[], stack: string[][], fn: LeafFn): TreeValue {
  if (v === null) return null; // sops leaves nil alone: not encrypted, not in the MAC
  if (v instanceof Branch) {
    walkBranch(v, path, stack, fn);
    return v;
  }
  if (Array.isArray(v)) {
    walkSlice(v, path, stack, fn);
    return v;
  }
  return fn(v, path, stack);
}

const utf8 = new TextEncoder();

/** sops `ToBytes`: the bytes a value contributes to the MAC and is encrypted as. */
export function toBytes(v: Scalar | Comment): Uint8Array {
  if (typeof v === 'string') return utf8.encode(v);
  if (typeof v === 'bigint') return utf8.encode(v.toString());
  if (typeof v === 'number') return utf8.encode(formatFloat(v));
  if (typeof v === 'boolean') return utf8.encode(v ? 'True' : 'False');
  if (v instanceof Uint8Array) return v;
  if (v instanceof SopsTime) return utf8.encode(v.text);
  if (v instanceof Comment) return utf8.encode(v.value);
  return new Uint8Array(0);
}

/** Go `strconv.FormatFloat(f, 'f', -1, 64)`: the shortest digits that round-trip, never an exponent. */
export function formatFloat(f: number): string {
  if (Number.isNaN(f)) return 'NaN';
  if (!Number.isFinite(f)) return f > 0 ? '+Inf' : '-Inf';
  const s = String(f);
  const m = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(s);
  if (!m) return s;
  const [, sign, lead, frac = '', expText] = m;
  const digits = lead + frac;
  const point = 1 + Number(expText); // position of the decimal point within digits
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return `${sign}${digits}${'0'.repeat(point - digits.length)}`;
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

/** Plain JS data (for apps and Kubernetes Secrets): comments dropped, ints as numbers when safe. */
export function toPlain(v: TreeValue): unknown {
  if (v instanceof Branch) {
    const out: Record<string, unknown> = {};
    for (const it of v.items) if (typeof it.key === 'string') out[it.key] = toPlain(it.value);
    return out;
  }
  if (Array.isArray(v)) return v.filter((x) => !(x instanceof Comment)).map(toPlain);
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (v instanceof SopsTime) return v.text;
  if (v instanceof Uint8Array) return Buffer.from(v).toString('utf8');
  return v;
}

/** Text of a scalar as an environment variable or file would carry it. */
export function scalarText(v: TreeValue): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') return formatFloat(v);
  if (typeof v === 'boolean') return String(v);
  if (v instanceof SopsTime) return v.text;
  if (v instanceof Uint8Array) return Buffer.from(v).toString('utf8');
  return undefined;
}

export function cloneTree<T extends TreeValue>(v: T): T {
  if (v instanceof Branch) return new Branch(v.items.map((i) => ({ key: i.key instanceof Comment ? new Comment(i.key.value, i.key.inline) : i.key, value: cloneTree(i.value) }))) as T;
  if (Array.isArray(v)) return v.map(cloneTree) as T;
  if (v instanceof Comment) return new Comment(v.value, v.inline) as T;
  return v;
}
