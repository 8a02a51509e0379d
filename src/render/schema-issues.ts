/** Validate a document against its zod schema; each zod issue becomes an `Issue` located at its YAML node. */
import type { z } from 'zod';
import type { Issue } from '../core/types.js';
import type { ParsedDoc } from './load.js';
import { issueAt, scalarSource, type PathSegment } from './positions.js';

export type Validated<T> = { ok: true; value: T } | { ok: false; issues: Issue[] };

/** `subject` names the document in messages, e.g. `App "web"`. */
export function validate<S extends z.ZodType>(schema: S, doc: ParsedDoc, value: unknown, subject: string): Validated<z.output<S>> {
  const res = schema.safeParse(value, { error: messageFor, reportInput: true });
  if (res.success) return { ok: true, value: res.data };
  return { ok: false, issues: res.error.issues.flatMap((iss) => toIssues(schema, doc, subject, iss)) };
}

function toIssues(schema: z.ZodType, doc: ParsedDoc, subject: string, iss: z.core.$ZodIssue): Issue[] {
  const path = iss.path as PathSegment[];
  const at = (p: PathSegment[], msg: string, anchor: 'key' | 'value' = 'value') => issueAt(doc, p, `${subject}: ${msg}`, anchor);
  switch (iss.code) {
    case 'unrecognized_keys': {
      const known = fieldsAt(schema, path);
      return iss.keys.map((k) => {
        const hint = suggest(k, known);
        const tail = hint ? `; did you mean "${hint}"?` : known.length ? ` (allowed: ${known.join(', ')})` : '';
        return at([...path, k], `unknown field "${formatPath([...path, k])}"${tail}`, 'key');
      });
    }
    case 'invalid_key': {
      const reason = iss.issues[0]?.message ?? iss.message;
      return [at(path, `${formatPath(path.slice(0, -1))}: "${String(path.at(-1))}" is not a valid name: ${reason}`, 'key')];
    }
    case 'invalid_type': {
      const src = scalarSource(doc, path);
      if (iss.expected === 'string' && typeof iss.input === 'number' && src !== undefined) {
        return [at(path, `${formatPath(path)}: must be a string; quote it ("${src}"), as YAML reads an unquoted ${src} as a number`)];
      }
      return [at(path, `${formatPath(path)}: ${iss.message}`)];
    }
    default:
      return [at(path, path.length ? `${formatPath(path)}: ${iss.message}` : iss.message)];
  }
}

/** Constant, actionable wording for zod's generic issues; `undefined` keeps zod's message. */
function messageFor(iss: z.core.$ZodRawIssue): string | undefined {
  switch (iss.code) {
    case 'invalid_type':
      return iss.input === undefined ? 'is required' : `must be ${noun(iss.expected)}, not ${describe(iss.input)}`;
    case 'too_small':
      if (iss.origin === 'array') return iss.minimum === 1 ? 'must not be empty' : `needs at least ${iss.minimum} items`;
      if (iss.origin === 'string') return 'must not be empty';
      return `must be at least ${iss.minimum}`;
    case 'too_big':
      return iss.origin === 'string' ? `must be at most ${iss.maximum} characters` : `must be at most ${iss.maximum}`;
    case 'invalid_value':
      return `must be ${iss.values.map((v) => JSON.stringify(v)).join(' or ')}`;
    default:
      return undefined;
  }
}

const nouns: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
  record: 'a mapping',
};

function noun(expected: string): string {
  return nouns[expected] ?? expected;
}

function describe(v: unknown): string {
  if (v === null) return 'empty';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'number') return `the number ${v}`;
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  return `${typeof v} ${String(v)}`;
}

export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out ? `.${seg}` : seg;
  return out || '(document)';
}

/** Field names a strict object accepts at `path`, to suggest a fix for a typo. */
function fieldsAt(schema: z.ZodType, path: readonly PathSegment[]): string[] {
  let s: z.core.$ZodType | undefined = unwrap(schema as z.core.$ZodType);
  for (const seg of path) {
    const def = s?._zod.def as unknown as Record<string, unknown> | undefined;
    if (!def) return [];
    if (def.type === 'object') s = (def.shape as Record<string, z.core.$ZodType>)[String(seg)];
    else if (def.type === 'array') s = def.element as z.core.$ZodType;
    else if (def.type === 'record') s = def.valueType as z.core.$ZodType;
    else return [];
    s = s && unwrap(s);
  }
  const def = s?._zod.def as unknown as Record<string, unknown> | undefined;
  return def?.type === 'object' ? Object.keys(def.shape as object) : [];
}

function unwrap(s: z.core.$ZodType): z.core.$ZodType {
  for (;;) {
    const def = s._zod.def as unknown as Record<string, unknown>;
    if ('innerType' in def) s = def.innerType as z.core.$ZodType;
    else if (def.type === 'pipe') s = def.in as z.core.$ZodType;
    else return s;
  }
}

/** The closest known name, if it is close enough to be a typo. */
export function suggest(word: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDist = Math.max(1, Math.floor(word.length / 3)) + 1;
  for (const k of known) {
    const d = k.toLowerCase() === word.toLowerCase() ? 0 : distance(word, k);
    if (d < bestDist) [best, bestDist] = [k, d];
  }
  return best;
}

function distance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 3) return Infinity;
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}
