/**
 * Kubernetes objects as plain data: keys, Keelson's labels and annotations, hashing and comparison. No I/O.
 */
import { createHash } from 'node:crypto';

export interface KObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

/** What identifies an object in the cluster. */
export interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
}

export const FIELD_MANAGER = 'keelson';
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const LABEL_ENV = 'keelson.dev/env';
export const LABEL_APP = 'keelson.dev/app';
/** Hash of the object as Keelson last applied it: an unchanged desired object is never written again. */
export const ANNOTATION_APPLIED = 'keelson.dev/applied';
/** `keelson.dev/prune: disabled` (or "false") keeps an object when it is no longer declared. */
export const ANNOTATION_PRUNE = 'keelson.dev/prune';
export const ARGO_SYNC_WAVE = 'argocd.argoproj.io/sync-wave';
export const ARGO_SYNC_OPTIONS = 'argocd.argoproj.io/sync-options';
export const ARGO_HOOK = 'argocd.argoproj.io/hook';
export const ARGO_HOOK_DELETE_POLICY = 'argocd.argoproj.io/hook-delete-policy';
export const FLUX_PRUNE = 'kustomize.toolkit.fluxcd.io/prune';
export const ARGO_COMPARE_OPTIONS = 'argocd.argoproj.io/compare-options';
/** On hook objects created with `generateName`: which hook (phase, generateName, kind) a run belongs to. */
export const LABEL_HOOK = 'keelson.dev/hook';

/** The canonical key, `kind/namespace/name` (`kind/name` for cluster-scoped objects). */
export function formatKey(o: ObjectRef | KObject): string {
  const r = 'metadata' in o ? refOf(o as KObject) : (o as ObjectRef);
  return r.namespace ? `${r.kind}/${r.namespace}/${r.name}` : `${r.kind}/${r.name}`;
}

export function refOf(o: KObject): ObjectRef {
  // A hook written with `generateName` has no name until the server gives it one: `migrate-*` stands for its runs.
  const name = o.metadata.name ?? (typeof o.metadata.generateName === 'string' ? `${o.metadata.generateName}*` : o.metadata.name);
  const r: ObjectRef = { apiVersion: o.apiVersion, kind: o.kind, name };
  if (o.metadata.namespace) r.namespace = o.metadata.namespace;
  return r;
}

export function groupOf(apiVersion: string): string {
  return apiVersion.includes('/') ? apiVersion.split('/')[0] : '';
}

/** Identity across API versions of the same group (`apps/v1` and `apps/v1beta1` Deployments are one object). */
export function identity(o: ObjectRef | KObject): string {
  const r = 'metadata' in o ? refOf(o as KObject) : (o as ObjectRef);
  return `${groupOf(r.apiVersion)}/${formatKey(r)}`;
}

/** JSON with sorted keys, so equal data always hashes the same. */
export function stableJson(v: unknown): string {
  return JSON.stringify(v, (_k, val) =>
    val && typeof val === 'object' && !Array.isArray(val) ? Object.fromEntries(Object.entries(val).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : val,
  );
}

export function hashOf(v: unknown): string {
  return createHash('sha256').update(stableJson(v)).digest('hex').slice(0, 16);
}

/** The desired object with Keelson's ownership labels and its applied-hash annotation. */
export function withOwnership(o: KObject, env: string, app: string): KObject {
  const labels = { ...o.metadata.labels, [LABEL_MANAGED_BY]: 'keelson', [LABEL_ENV]: env, [LABEL_APP]: app };
  const base: KObject = { ...o, metadata: { ...o.metadata, labels } };
  const annotations = { ...o.metadata.annotations, [ANNOTATION_APPLIED]: hashOf(base) };
  return { ...base, metadata: { ...base.metadata, annotations } };
}

/** Argo CD sync options of one object (`argocd.argoproj.io/sync-options`, comma-separated, trimmed). */
export function syncOptionsOf(o: KObject | undefined): string[] {
  return (o?.metadata.annotations?.[ARGO_SYNC_OPTIONS] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
}

/**
 * The value of sync option `name` for this object: its annotation wins over the App's `syncOptions` (as in Argo CD,
 * where a resource's option overrides the Application's).
 */
export function syncOption(o: KObject | undefined, name: string, appOptions: readonly string[] = []): string | undefined {
  const pick = (list: readonly string[]) => {
    let v: string | undefined;
    for (const s of list) if (s.startsWith(`${name}=`)) v = s.slice(name.length + 1);
    return v;
  };
  return pick(syncOptionsOf(o)) ?? pick(appOptions);
}

/** Whether prune must leave this object alone (Keelson's, Argo CD's and Flux's annotations). */
export function isKept(o: KObject | undefined, appOptions: readonly string[] = []): boolean {
  const a = o?.metadata.annotations ?? {};
  const keelson = a[ANNOTATION_PRUNE];
  if (keelson === 'disabled' || keelson === 'false') return true;
  if (a[FLUX_PRUNE] === 'disabled') return true;
  return syncOption(o, 'Prune', appOptions) === 'false';
}

/** `Prune=confirm`: pruned only once someone confirms it (`keelson sync --confirm-prune`). */
export function needsPruneConfirmation(o: KObject | undefined, appOptions: readonly string[] = []): boolean {
  return syncOption(o, 'Prune', appOptions) === 'confirm';
}

/** `argocd.argoproj.io/compare-options: IgnoreExtraneous`: not counted in the app's sync status when extraneous. */
export function ignoresExtraneous(o: KObject | undefined): boolean {
  return (o?.metadata.annotations?.[ARGO_COMPARE_OPTIONS] ?? '').split(',').some((s) => s.trim() === 'IgnoreExtraneous');
}

export function waveOf(o: KObject): number {
  const w = Number.parseInt(o.metadata.annotations?.[ARGO_SYNC_WAVE] ?? '0', 10);
  return Number.isFinite(w) ? w : 0;
}

/**
 * One field where live differs from desired, found by `firstDifference`: a path like `spec.replicas`,
 * `spec.template.spec.containers[0].image`.
 */
export interface FieldDiff {
  path: string;
  desired: unknown;
  live: unknown;
}

/**
 * Fields of `desired` that `live` does not carry with the same value (live may have more: defaults, status).
 * Lists compare element by element and must have the same length.
 */
export function subsetDiffs(desired: unknown, live: unknown, path = '', out: FieldDiff[] = [], limit = 20): FieldDiff[] {
  if (out.length >= limit) return out;
  if (Array.isArray(desired)) {
    if (!Array.isArray(live) || live.length !== desired.length) {
      out.push({ path, desired, live });
      return out;
    }
    desired.forEach((d, i) => subsetDiffs(d, live[i], `${path}[${i}]`, out, limit));
    return out;
  }
  if (desired !== null && typeof desired === 'object') {
    if (live === null || typeof live !== 'object' || Array.isArray(live)) {
      out.push({ path, desired, live });
      return out;
    }
    for (const [k, v] of Object.entries(desired)) {
      if (v === undefined) continue;
      subsetDiffs(v, (live as Record<string, unknown>)[k], path ? `${path}.${k}` : k, out, limit);
    }
    return out;
  }
  if (!scalarEqual(desired, live)) out.push({ path, desired, live });
  return out;
}

/** `8080` and `"8080"` are one value to the API server (int-or-string fields). */
function scalarEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if ((typeof a === 'number' && typeof b === 'string') || (typeof a === 'string' && typeof b === 'number')) return String(a) === String(b);
  return false;
}

/** Live is what Keelson applied: the applied hash matches and every desired field holds. */
export function matchesDesired(desired: KObject, live: KObject | undefined): boolean {
  if (!live) return false;
  if (live.metadata.annotations?.[ANNOTATION_APPLIED] !== desired.metadata.annotations?.[ANNOTATION_APPLIED]) return false;
  return subsetDiffs(desired, live, '', [], 1).length === 0;
}

/** Server-populated fields dropped before comparing two versions of an object (diff, dry-run compare). */
export function normalize(o: KObject): KObject {
  const { status: _status, ...rest } = o as KObject & { status?: unknown };
  const { managedFields: _m, resourceVersion: _r, uid: _u, creationTimestamp: _c, generation: _g, selfLink: _s, ...metadata } = o.metadata;
  const annotations = { ...(metadata.annotations ?? {}) };
  delete annotations['deployment.kubernetes.io/revision'];
  const out: KObject = { ...rest, metadata: { ...metadata, name: o.metadata.name } };
  if (Object.keys(annotations).length) out.metadata.annotations = annotations;
  else delete out.metadata.annotations;
  return out;
}

/** Every leaf that differs between two objects (both directions), for `keelson diff`. */
export function fullDiffs(live: unknown, desired: unknown, path = '', out: FieldDiff[] = []): FieldDiff[] {
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (isObj(live) && isObj(desired)) {
    const keys = [...new Set([...Object.keys(live), ...Object.keys(desired)])].sort();
    for (const k of keys) fullDiffs(live[k], desired[k], path ? `${path}.${k}` : k, out);
    return out;
  }
  if (Array.isArray(live) && Array.isArray(desired) && live.length === desired.length) {
    live.forEach((l, i) => fullDiffs(l, desired[i], `${path}[${i}]`, out));
    return out;
  }
  if (stableJson(live) !== stableJson(desired) && !scalarEqual(live, desired)) out.push({ path, live, desired });
  return out;
}
