/**
 * Inventory recovery: the record of what each app applied (inventory.ts) is kept in the engine's own store, so an
 * engine that runs an environment another engine ran before (a claim taken over, a shard moved, a replica that
 * restarted with an empty state directory) has no record of it, or an outdated one. Without it the new owner could
 * not prune what the previous owner applied.
 *
 * Every object Keelson applies carries its environment and app labels and its applied hash (objects.ts), so the
 * records can be rebuilt from the cluster, as Argo CD's label tracking does: each time this engine starts holding an
 * environment, one metadata-only list per served kind, selected by the environment's label (environments taken at
about the same time share the lists), tells which objects each
 * app has live. A record that still matches them is kept as it is; otherwise the live objects are adopted as the
 * app's record, marked `adopted` (status says so, and the next sync compares them with desired and prunes the rest).
 *
 * Not listed: hook runs, `keelson run` Jobs, objects a controller owns (ownerReferences) and objects without the
 * applied hash (labels copied by a controller, e.g. Endpoints of a Service). Reads only; nothing is written.
 */
import { isNotFound, isTransient, statusCode, type KubeClient } from './client.js';
import type { AppInventory } from './inventory.js';
import { ANNOTATION_APPLIED, ARGO_HOOK, FLUX_PRUNE, ANNOTATION_PRUNE, identity, LABEL_APP, LABEL_ENV, LABEL_HOOK, LABEL_MANAGED_BY, type KObject } from './objects.js';
import { LABEL_RUN } from './run-job.js';
import type { DesiredApp } from '../../core/model.js';

/** What a record adopted from live objects says about itself (`AppInventory.adopted`). */
export interface Adoption {
  /** When the live objects were adopted. */
  at: string;
  /** Why: no record here, or the record here no longer matched what is live. */
  why: 'no-record' | 'outdated';
}

/** A kind the server serves and lists. */
export interface ServedKind {
  apiVersion: string;
  kind: string;
  /** Plural, as in the REST path. */
  plural: string;
}

/** Kinds never applied by Keelson and large in number: not listed. */
const NEVER_APPLIED = new Set(['v1/Event', 'events.k8s.io/v1/Event', 'v1/ComponentStatus', 'v1/Binding']);

const METADATA_ONLY = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json';
const AGGREGATED = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json';

/**
 * Every kind the server serves with the `list` verb, in each group's preferred version: aggregated discovery (two
 * requests, Kubernetes ≥ 1.30), else the classic walk over the groups.
 */
export async function servedKinds(api: KubeClient): Promise<ServedKind[]> {
  const out = new Map<string, ServedKind>();
  const add = (group: string, version: string, resources: { plural: string; kind: string; verbs?: string[] }[]) => {
    const apiVersion = group ? `${group}/${version}` : version;
    for (const r of resources) {
      if (r.plural.includes('/') || !r.verbs?.includes('list')) continue;
      const key = `${group}/${r.kind}`;
      if (out.has(key) || NEVER_APPLIED.has(`${apiVersion}/${r.kind}`)) continue;
      out.set(key, { apiVersion, kind: r.kind, plural: r.plural });
    }
  };
  const aggregated = await Promise.all(['/api', '/apis'].map((p) => api.request<any>('GET', p, { accept: AGGREGATED })));
  if (aggregated.every((a) => a?.kind === 'APIGroupDiscoveryList')) {
    for (const list of aggregated) {
      for (const g of list.items ?? []) {
        const v = g.versions?.[0]; // preferred first
        if (!v) continue;
        add(g.metadata?.name ?? '', v.version, (v.resources ?? []).map((r: any) => ({ plural: r.resource, kind: r.responseKind?.kind, verbs: r.verbs })));
      }
    }
    return [...out.values()];
  }
  const core = await api.request<any>('GET', '/api/v1');
  add('', 'v1', (core.resources ?? []).map((r: any) => ({ plural: r.name, kind: r.kind, verbs: r.verbs })));
  const groups = await api.request<any>('GET', '/apis');
  for (const g of groups.groups ?? []) {
    const gv = g.preferredVersion?.groupVersion ?? g.versions?.[0]?.groupVersion;
    if (!gv) continue;
    const list = await api.request<any>('GET', `/apis/${gv}`).catch((err) => {
      if (isTransient(err)) throw err;
      return { resources: [] }; // an aggregated API that is down lists nothing
    });
    add(g.name, gv.split('/')[1], (list.resources ?? []).map((r: any) => ({ plural: r.name, kind: r.kind, verbs: r.verbs })));
  }
  return [...out.values()];
}

/** Live objects labelled for `env` that Keelson applied (see the module comment), as their metadata. */
export interface LabelledObjects {
  objects: KObject[];
  /** Kinds that could not be listed (refused by RBAC): objects of these kinds cannot be adopted. */
  refused: string[];
  /** Requests made (discovery and lists). */
  requests: number;
}

/**
 * What one client learnt, shared by the environments it serves (several are often taken over at once): the served
 * kinds for a minute, the kinds RBAC refused to list for ten (an install whose RBAC is narrowed to a few kinds is
 * not asked again for every other kind at every take-over).
 */
const learnt = new WeakMap<KubeClient, { kinds?: { at: number; p: Promise<ServedKind[]> }; refused: Map<string, number> }>();
const KINDS_TTL_MS = 60_000;
const REFUSED_TTL_MS = 600_000;

function learntOf(api: KubeClient) {
  let l = learnt.get(api);
  if (!l) learnt.set(api, (l = { refused: new Map() }));
  return l;
}

function cachedKinds(api: KubeClient): { kinds: Promise<ServedKind[]>; fresh: boolean } {
  const l = learntOf(api);
  const now = performance.now();
  if (l.kinds && now - l.kinds.at < KINDS_TTL_MS) return { kinds: l.kinds.p, fresh: false };
  const p = servedKinds(api);
  const entry = { at: now, p };
  l.kinds = entry;
  p.catch(() => {
    if (l.kinds === entry) l.kinds = undefined;
  });
  return { kinds: p, fresh: true };
}

const BATCH_MS = 50;
const BATCH_ENVS = 50;
const batches = new WeakMap<KubeClient, { waiting: Map<string, { resolve: (r: LabelledObjects) => void; reject: (e: unknown) => void }[]>; timer?: NodeJS.Timeout }>();

/**
 * `labelledObjects` of one environment, batched: environments of one cluster asked for within 50 ms of each other
 * (an engine starting, or taking over a departed engine's share) are listed together, one list per kind for up to 50
 * environments (`keelson.dev/env in (…)`).
 */
export function labelledObjectsOf(api: KubeClient, env: string): Promise<LabelledObjects> {
  let b = batches.get(api);
  if (!b) batches.set(api, (b = { waiting: new Map() }));
  const batch = b;
  return new Promise((resolve, reject) => {
    let list = batch.waiting.get(env);
    if (!list) batch.waiting.set(env, (list = []));
    list.push({ resolve, reject });
    batch.timer ??= setTimeout(() => {
      const waiting = batch.waiting;
      batch.waiting = new Map();
      batch.timer = undefined;
      const envs = [...waiting.keys()];
      for (let i = 0; i < envs.length; i += BATCH_ENVS) {
        const chunk = envs.slice(i, i + BATCH_ENVS);
        labelledObjects(api, chunk).then(
          (r) => {
            for (const e of chunk) {
              const mine = { ...r, objects: r.objects.filter((o) => o.metadata.labels?.[LABEL_ENV] === e) };
              for (const w of waiting.get(e)!) w.resolve(mine);
            }
          },
          (err) => {
            for (const e of chunk) for (const w of waiting.get(e)!) w.reject(err);
          },
        );
      }
    }, BATCH_MS);
  });
}

/** One metadata-only list per served kind, selected by the environments' label; `concurrency` lists at once. */
export async function labelledObjects(api: KubeClient, envs: string[], o: { concurrency?: number } = {}): Promise<LabelledObjects> {
  const l = learntOf(api);
  const served = cachedKinds(api);
  const now = performance.now();
  const kinds = (await served.kinds).filter((k) => !(now - (l.refused.get(`${k.apiVersion}/${k.kind}`) ?? -Infinity) < REFUSED_TTL_MS));
  const objects: KObject[] = [];
  const refused: string[] = [];
  let requests = served.fresh ? 2 : 0;
  const selector = `${LABEL_MANAGED_BY}=keelson,${envs.length === 1 ? `${LABEL_ENV}=${envs[0]}` : `${LABEL_ENV} in (${envs.join(',')})`}`;
  const wanted = new Set(envs);
  let next = 0;
  const worker = async () => {
    while (next < kinds.length) {
      const k = kinds[next++];
      const base = k.apiVersion.includes('/') ? `/apis/${k.apiVersion}/${k.plural}` : `/api/${k.apiVersion}/${k.plural}`;
      let cont: string | undefined;
      do {
        requests++;
        const page = await api.request<{ items?: KObject[]; metadata?: { continue?: string } }>('GET', base, { accept: METADATA_ONLY, query: { labelSelector: selector, limit: 500, continue: cont } }).catch((err) => {
          if (isTransient(err)) throw err;
          if (statusCode(err) === 403) {
            refused.push(`${k.kind} (${k.apiVersion})`);
            l.refused.set(`${k.apiVersion}/${k.kind}`, performance.now());
          }
          else if (!isNotFound(err) && statusCode(err) !== 405) throw err;
          return undefined;
        });
        for (const item of page?.items ?? []) {
          const env = item.metadata?.labels?.[LABEL_ENV];
          const obj = env !== undefined && wanted.has(env) ? tracked({ ...item, apiVersion: k.apiVersion, kind: k.kind }, env) : undefined;
          if (obj) objects.push(obj);
        }
        cont = page?.metadata?.continue || undefined;
      } while (cont);
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.concurrency ?? 16, kinds.length) }, worker));
  return { objects, refused: refused.sort(), requests };
}

/**
 * The object as an adopted record keeps it: identity, labels and annotations (prune reads its keep annotations), the
 * applied hash; undefined when it is not one of the app's tracked objects.
 */
export function tracked(o: KObject, env: string): KObject | undefined {
  const m = o.metadata;
  const labels = m.labels ?? {};
  const annotations = m.annotations ?? {};
  if (labels[LABEL_MANAGED_BY] !== 'keelson' || labels[LABEL_ENV] !== env || !labels[LABEL_APP]) return undefined;
  if (!annotations[ANNOTATION_APPLIED]) return undefined; // a controller's copy of the labels (Endpoints, ReplicaSets)
  if (labels[LABEL_HOOK] || labels[LABEL_RUN] || annotations[ARGO_HOOK] || annotations['helm.sh/hook']) return undefined;
  if (Array.isArray(m.ownerReferences) && m.ownerReferences.length > 0) return undefined;
  const { 'kubectl.kubernetes.io/last-applied-configuration': _big, ...kept } = annotations;
  const metadata: KObject['metadata'] = { name: m.name, labels: { ...labels }, annotations: kept };
  if (m.namespace) metadata.namespace = m.namespace;
  return { apiVersion: o.apiVersion, kind: o.kind, metadata };
}

/** What recovery decided per app: records kept as they are, records adopted from live, records of nothing live. */
export interface Recovery {
  kept: string[];
  adopted: AppInventory[];
  dropped: string[];
}

/**
 * Pure: the records of `env` against the live objects labelled for it. A record whose objects are exactly the live
 * ones (identities and applied hashes; objects it keeps as extraneous count) stays; an app with live objects and no
 * matching record gets an adopted record of them (the spec of an outdated record is kept for status); a record with
 * nothing live goes (the previous owner pruned the app).
 */
export function recoverInventory(env: string, records: AppInventory[], live: KObject[], now: Date): Recovery {
  const byApp = new Map<string, KObject[]>();
  for (const o of live) {
    const app = o.metadata.labels![LABEL_APP];
    let list = byApp.get(app);
    if (!list) byApp.set(app, (list = []));
    list.push(o);
  }
  const out: Recovery = { kept: [], adopted: [], dropped: [] };
  const recorded = new Map(records.map((r) => [r.app, r]));
  for (const [app, objects] of [...byApp].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const record = recorded.get(app);
    if (record && !record.adopted && matchesLive(record, objects)) {
      out.kept.push(app);
      continue;
    }
    if (record?.adopted && sameAdopted(record.objects, objects)) {
      out.kept.push(app);
      continue;
    }
    out.adopted.push({
      env,
      app,
      revision: record?.revision ?? '',
      version: record?.version ?? '',
      template: '', // never equal to a desired template: the next sync compares every object
      spec: record?.spec ?? unknownSpec(env, app),
      objects: sortById(objects),
      appliedAt: now.toISOString(),
      adopted: { at: now.toISOString(), why: record ? 'outdated' : 'no-record' },
    });
  }
  for (const r of records) if (!byApp.has(r.app)) out.dropped.push(r.app);
  return out;
}

/**
 * Whether a record's objects are the live ones: the same identities (objects kept as extraneous included; objects
 * handed over by a keep annotation may stay live beside it) and each recorded object's applied hash live.
 */
function matchesLive(record: AppInventory, live: KObject[]): boolean {
  const liveById = new Map(live.map((o) => [identity(o), o]));
  const recordedIds = new Set<string>();
  for (const o of record.objects) {
    const id = identity(o);
    recordedIds.add(id);
    const l = liveById.get(id);
    if (!l || l.metadata.annotations?.[ANNOTATION_APPLIED] !== o.metadata.annotations?.[ANNOTATION_APPLIED]) return false;
  }
  for (const e of record.extraneous ?? []) recordedIds.add(identity(e.object));
  for (const [id, l] of liveById) if (!recordedIds.has(id) && !handedOver(l)) return false;
  return true;
}

function sameAdopted(recorded: KObject[], live: KObject[]): boolean {
  const key = (o: KObject) => `${identity(o)}@${o.metadata.annotations?.[ANNOTATION_APPLIED] ?? ''}`;
  const a = new Set(recorded.map(key));
  return a.size === live.length && live.every((o) => a.has(key(o)));
}

/** Annotated to be kept when no longer declared, and then no longer managed (delete.ts): not the record's business. */
function handedOver(o: KObject): boolean {
  const a = o.metadata.annotations ?? {};
  return a[ANNOTATION_PRUNE] === 'disabled' || a[ANNOTATION_PRUNE] === 'false' || a[FLUX_PRUNE] === 'disabled';
}

function sortById(objects: KObject[]): KObject[] {
  return [...objects].sort((a, b) => (identity(a) < identity(b) ? -1 : 1));
}

/** The spec of an app known only by its live objects: status shows the app, its spec is unknown until the next sync. */
function unknownSpec(env: string, app: string): DesiredApp {
  return {
    name: app,
    env,
    version: '',
    artifact: {},
    command: [],
    vars: {},
    replicas: 0,
    dependsOn: [],
    progressDeadlineSeconds: 0,
    terminationGracePeriodSeconds: 0,
    source: { file: '', line: 0, col: 0 },
  };
}

/** The sentence status shows for an adopted record. */
export function adoptedMessage(inv: AppInventory): string {
  const n = inv.objects.length;
  const why = inv.adopted?.why === 'outdated' ? 'this engine’s record of it was outdated' : 'this engine had no record of it';
  return `taken over: ${n} live object${n === 1 ? '' : 's'} labelled for this app adopted as its inventory (${why}: another engine ran the environment, or the state directory is new); the next sync compares them with desired and prunes what is no longer declared`;
}
