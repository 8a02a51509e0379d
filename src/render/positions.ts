/** Map a path inside a parsed YAML document (as zod reports it) to a 1-based line:col. */
import { isMap, isPair, isScalar, isSeq, type Node, type Pair } from 'yaml';
import type { Issue } from '../core/types.js';
import type { SourceRef } from '../core/model.js';
import type { ParsedDoc } from './load.js';

export type PathSegment = string | number;

/** `key` points at a mapping key (`port:`), `value` at its value (`8080`). */
export type Anchor = 'key' | 'value';

interface Found {
  /** The deepest node reached along the path (or the pair holding it). */
  node: Node | Pair | null;
  /** Whether the whole path was found. */
  complete: boolean;
}

function walk(root: unknown, path: readonly PathSegment[], anchor: Anchor): Found {
  let node: unknown = root;
  let last: Node | Pair | null = (root as Node | null) ?? null;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i];
    if (isMap(node)) {
      const pair = node.items.find((p) => keyText(p) === String(seg));
      if (!pair) return { node: last, complete: false };
      const isLast = i === path.length - 1;
      // A missing or empty value has no useful position of its own: point at the key instead.
      last = isLast && anchor === 'key' ? pair : ((pair.value as Node | null) ?? pair);
      // An empty value, or a block mapping/list starting on the next line, reads best at its key.
      if (isScalar(pair.value) && pair.value.value === null && pair.value.source === '') last = pair;
      if ((isMap(pair.value) || isSeq(pair.value)) && !pair.value.flow) last = pair;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number' && seg < node.items.length) {
      node = node.items[seg];
      last = (node as Node | null) ?? last;
    } else {
      return { node: last, complete: false };
    }
  }
  return { node: last, complete: true };
}

function keyText(pair: Pair): string {
  return String(isScalar(pair.key) ? pair.key.value : pair.key);
}

function startOf(node: Node | Pair | null): number | undefined {
  if (!node) return undefined;
  if (isPair(node)) return (node.key as Node | null)?.range?.[0] ?? (node.value as Node | null)?.range?.[0];
  return node.range?.[0];
}

/** Position of the node at `path` (or of the nearest existing ancestor). */
export function locate(doc: ParsedDoc, path: readonly PathSegment[], anchor: Anchor = 'value'): SourceRef {
  const { node } = walk(doc.doc.contents, path, anchor);
  const offset = startOf(node) ?? doc.doc.contents?.range?.[0] ?? doc.doc.range[0];
  const { line, col } = doc.lineCounter.linePos(offset);
  return { file: doc.file, line, col };
}

/** The YAML scalar at `path`, if it is one (to quote what the user wrote, e.g. `1.10`). */
export function scalarSource(doc: ParsedDoc, path: readonly PathSegment[]): string | undefined {
  const { node, complete } = walk(doc.doc.contents, path, 'value');
  return complete && isScalar(node) ? node.source : undefined;
}

export function issueAt(doc: ParsedDoc, path: readonly PathSegment[], message: string, anchor: Anchor = 'value'): Issue {
  return { ...locate(doc, path, anchor), message };
}

export function formatRef(ref: SourceRef): string {
  return `${ref.file}:${ref.line}:${ref.col}`;
}
