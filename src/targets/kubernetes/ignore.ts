/**
 * `spec.ignoreDifferences` (Argo CD's, with RespectIgnoreDifferences always on): fields of an object named by a JSON
 * pointer, or owned by a listed field manager per the live `managedFields`, belong to someone else. They are not
 * compared (drift, intact), not shown by `keelson diff`, and not taken back on apply: they are left out of the
 * applied object, so the other manager keeps them. Pure; no I/O.
 */
import type { IgnoreDifference } from '../../core/model.js';
import { FIELD_MANAGER, groupOf, stableJson, type KObject } from './objects.js';

export type FieldPath = (string | number)[];

/** RFC 6901 tokens of a pointer (the schema checked its syntax). */
export function pointerTokens(pointer: string): string[] {
  return pointer
    .split('/')
    .slice(1)
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function glob(pattern: string, value: string): boolean {
  if (pattern === '*') return true;
  if (!pattern.includes('*')) return pattern === value;
  const re = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return re.test(value);
}

/** The rules that apply to this object: group and kind (globs, as Argo CD; no group is the core group), name, namespace. */
export function rulesFor(o: KObject, rules: readonly IgnoreDifference[] | undefined): IgnoreDifference[] {
  if (!rules?.length) return [];
  return rules.filter(
    (r) =>
      glob(r.group ?? '', groupOf(o.apiVersion)) &&
      glob(r.kind, o.kind) &&
      (r.name === undefined || r.name === o.metadata.name) &&
      (r.namespace === undefined || r.namespace === o.metadata.namespace),
  );
}

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function at(root: unknown, path: FieldPath): { found: boolean; value?: unknown } {
  let cur: unknown = root;
  for (const seg of path) {
    if (Array.isArray(cur) && typeof seg === 'number' && seg < cur.length) cur = cur[seg];
    else if (isObj(cur) && typeof seg === 'string' && seg in cur) cur = cur[seg];
    else return { found: false };
  }
  return { found: true, value: cur };
}

/** A pointer resolved against `o`: array indices become numbers; undefined when `o` has no such field. */
function resolvePointer(o: unknown, pointer: string): FieldPath | undefined {
  const path: FieldPath = [];
  let cur: unknown = o;
  for (const t of pointerTokens(pointer)) {
    if (Array.isArray(cur)) {
      if (!/^(0|[1-9]\d*)$/.test(t) || Number(t) >= cur.length) return undefined;
      path.push(Number(t));
      cur = cur[Number(t)];
    } else if (isObj(cur) && t in cur) {
      path.push(t);
      cur = cur[t];
    } else return undefined;
  }
  return path;
}

/**
 * The leaves of `o` that a `fieldsV1` set (managedFields) names: `f:` fields, `k:` list elements by their keys,
 * `v:` set values, `i:` indices. An element owned as a whole (`.` only) is one leaf.
 */
export function ownedLeaves(fields: unknown, node: unknown, path: FieldPath = [], out: FieldPath[] = []): FieldPath[] {
  if (!isObj(fields)) return out;
  for (const [k, sub] of Object.entries(fields)) {
    if (k === '.') continue;
    const leaf = !isObj(sub) || Object.keys(sub).every((x) => x === '.');
    let next: { seg: string | number; child: unknown } | undefined;
    if (k.startsWith('f:') && isObj(node) && k.slice(2) in node) next = { seg: k.slice(2), child: node[k.slice(2)] };
    else if (Array.isArray(node) && (k.startsWith('k:') || k.startsWith('v:') || k.startsWith('i:'))) {
      let idx = -1;
      try {
        const want = JSON.parse(k.slice(2)) as unknown;
        if (k.startsWith('i:')) idx = typeof want === 'number' && want < node.length ? want : -1;
        else if (k.startsWith('v:')) idx = node.findIndex((e) => stableJson(e) === stableJson(want));
        else if (isObj(want)) idx = node.findIndex((e) => isObj(e) && Object.entries(want).every(([wk, wv]) => String(e[wk]) === String(wv)));
      } catch {
        idx = -1;
      }
      if (idx >= 0) next = { seg: idx, child: node[idx] };
    }
    if (!next) continue;
    if (leaf) out.push([...path, next.seg]);
    else ownedLeaves(sub, next.child, [...path, next.seg], out);
  }
  return out;
}

interface ManagedFieldsEntry {
  manager?: string;
  operation?: string;
  fieldsV1?: unknown;
}

function managedFields(live: KObject | undefined): ManagedFieldsEntry[] {
  const m = live?.metadata.managedFields;
  return Array.isArray(m) ? (m as ManagedFieldsEntry[]) : [];
}

/** Fields of `desired` the rules leave alone: those of the JSON pointers, and those the listed managers own on `live`. */
export function ignoredPaths(desired: KObject, live: KObject | undefined, rules: readonly IgnoreDifference[]): FieldPath[] {
  const { pointed, managed } = ignoredByRule(desired, live, rules);
  return [...new Map([...pointed, ...managed].map((p) => [stableJson(p), p])).values()];
}

function ignoredByRule(desired: KObject, live: KObject | undefined, rules: readonly IgnoreDifference[]): { pointed: FieldPath[]; managed: FieldPath[] } {
  const pointed: FieldPath[] = [];
  const managed: FieldPath[] = [];
  for (const r of rules) {
    for (const p of r.jsonPointers ?? []) {
      const path = resolvePointer(desired, p);
      if (path) pointed.push(path);
    }
    const managers = new Set(r.managedFieldsManagers ?? []);
    if (!managers.size) continue;
    for (const e of managedFields(live)) if (e.manager && managers.has(e.manager)) managed.push(...ownedLeaves(e.fieldsV1, desired));
  }
  return { pointed, managed };
}

/** Removes `paths` from a copy of `o`; maps and list elements left empty by that go too. */
export function withoutPaths<T>(o: T, paths: FieldPath[]): T {
  if (!paths.length) return o;
  const copy = structuredClone(o);
  const sorted = [...paths].sort(comparePaths).reverse(); // deepest and highest index first: indices stay valid
  for (const path of sorted) {
    for (let depth = path.length; depth > 0; depth--) {
      const parent = at(copy, path.slice(0, depth - 1));
      const seg = path[depth - 1];
      if (!parent.found) break;
      const container = parent.value;
      if (depth === path.length) remove(container, seg);
      else {
        const child = at(container, [seg]);
        if (!child.found || !isEmpty(child.value)) break;
        remove(container, seg);
      }
    }
  }
  return copy;
}

function remove(container: unknown, seg: string | number): void {
  if (Array.isArray(container) && typeof seg === 'number') container.splice(seg, 1);
  else if (isObj(container) && typeof seg === 'string') delete container[seg];
}

function isEmpty(v: unknown): boolean {
  return (Array.isArray(v) && v.length === 0) || (isObj(v) && Object.keys(v).length === 0);
}

function comparePaths(a: FieldPath, b: FieldPath): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] === b[i]) continue;
    if (typeof a[i] === 'number' && typeof b[i] === 'number') return (a[i] as number) - (b[i] as number);
    return String(a[i]) < String(b[i]) ? -1 : 1;
  }
  return a.length - b.length;
}

/** What drift detection compares: the desired object without the ignored fields. */
export function comparable(desired: KObject, live: KObject | undefined, rules: readonly IgnoreDifference[] | undefined): KObject {
  const mine = rulesFor(desired, rules);
  return mine.length ? withoutPaths(desired, ignoredPaths(desired, live, mine)) : desired;
}

/**
 * What is sent to the server. Creating: the whole object. Updating: a field a listed manager owns is left out (that
 * manager keeps it, alone); a field named by a pointer that Keelson still owns keeps its live value (dropping it from
 * an apply would delete it), one another manager took is left out. `replace` (a PUT writes every field): each
 * ignored field takes its live value.
 */
export function forApply(desired: KObject, live: KObject | undefined, rules: readonly IgnoreDifference[] | undefined, mode: 'apply' | 'replace' = 'apply'): KObject {
  const mine = rulesFor(desired, rules);
  if (!live || !mine.length) return desired;
  const { managed } = ignoredByRule(desired, live, mine);
  const paths = ignoredPaths(desired, live, mine);
  if (!paths.length) return desired;
  const ours = new Set<string>();
  if (mode === 'apply') {
    for (const e of managedFields(live)) if (e.manager === FIELD_MANAGER && e.operation === 'Apply') for (const p of ownedLeaves(e.fieldsV1, desired)) ours.add(stableJson(p));
    for (const p of managed) ours.delete(stableJson(p));
  }
  const drop: FieldPath[] = [];
  const out = structuredClone(desired);
  for (const p of paths) {
    const liveValue = at(live, p);
    if ((mode === 'replace' || ours.has(stableJson(p))) && liveValue.found) setAt(out, p, structuredClone(liveValue.value));
    else drop.push(p);
  }
  return withoutPaths(out, drop);
}

function setAt(root: unknown, path: FieldPath, value: unknown): void {
  const parent = at(root, path.slice(0, -1));
  const seg = path[path.length - 1];
  if (Array.isArray(parent.value) && typeof seg === 'number') parent.value[seg] = value;
  else if (isObj(parent.value) && typeof seg === 'string') parent.value[seg] = value;
}

/** `spec.template.spec.containers[0].image`: a path as drift messages and `keelson diff` write it. */
export function pathText(path: FieldPath): string {
  return path.map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : `.${s}`)).join('');
}

/** Whether a diff path (as `pathText` writes it) lies in one of the ignored fields. */
export function underAny(path: string, ignored: FieldPath[]): boolean {
  return ignored.some((p) => {
    const t = pathText(p);
    return path === t || path.startsWith(`${t}.`) || path.startsWith(`${t}[`);
  });
}
