/**
 * Live objects by watch, not by polling: one list + watch per managed kind, all namespaces, selected by Keelson's
 * environment label. Keeps a cache that observe, apply and drift detection read without API requests.
 */
import type { Logger } from '../../log.js';
import { TransientError } from '../../core/errors.js';
import { collectionPath, isTransient, statusCode, type KubeClient } from './client.js';
import { groupOf, identity, LABEL_ENV, type KObject } from './objects.js';

export type WatchEvent = 'add' | 'update' | 'delete';

interface KindWatch {
  synced: Promise<void>;
  stopped: boolean;
  abort: AbortController;
}

export class ObjectWatch {
  private readonly kinds = new Map<string, KindWatch>();
  private readonly cache = new Map<string, KObject>();
  private readonly listeners = new Set<(type: WatchEvent, o: KObject) => void>();
  /** Listeners of single objects (health waits): an event reaches only the waits on that object. */
  private readonly byId = new Map<string, Set<() => void>>();

  constructor(
    private readonly o: {
      api: KubeClient;
      env: string;
      log: Logger;
      /** Objects whose `managedFields` are kept in the cache (dropped otherwise): those with ignoreDifferences rules. */
      keepManagedFields?: (o: KObject) => boolean;
    },
  ) {}

  /**
   * Drops what nothing here reads from a watched object, in place: managed fields are often half of an object's size,
   * and thousands of objects are cached; kept only where ignoreDifferences rules read them.
   */
  private slim(o: KObject): KObject {
    if (o?.metadata?.managedFields && !this.o.keepManagedFields?.(o)) delete o.metadata.managedFields;
    return o;
  }

  get(o: KObject | { apiVersion: string; kind: string; namespace?: string; name: string }): KObject | undefined {
    return this.cache.get(identity(o as KObject));
  }

  /** The cached object of an identity (objects.ts `identity`). */
  getById(id: string): KObject | undefined {
    return this.cache.get(id);
  }

  /** Subscribes to changes of watched objects; returns the unsubscribe function. */
  onChange(fn: (type: WatchEvent, o: KObject) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Calls `fn` when one of `objects` changes; returns the unsubscribe function. */
  onObjects(objects: KObject[], fn: () => void): () => void {
    const ids = [...new Set(objects.map((o) => identity(o)))];
    for (const id of ids) {
      let s = this.byId.get(id);
      if (!s) this.byId.set(id, (s = new Set()));
      s.add(fn);
    }
    return () => {
      for (const id of ids) {
        const s = this.byId.get(id);
        s?.delete(fn);
        if (s?.size === 0) this.byId.delete(id);
      }
    };
  }

  /**
   * Starts watching a kind (once) and resolves when its first list is in the cache. Callers that come while the
   * first one still waits share its watch: the entry is in `kinds` before anything is awaited.
   */
  async ensure(apiVersion: string, kind: string): Promise<void> {
    const key = `${apiVersion}/${kind}`;
    let w = this.kinds.get(key);
    if (!w) {
      const watch: KindWatch = { synced: Promise.resolve(), stopped: false, abort: new AbortController() };
      watch.synced = this.startWatch(watch, apiVersion, kind);
      this.kinds.set(key, watch);
      w = watch;
    }
    const current = w;
    await current.synced.catch((err) => {
      // The first list failed: drop it so the next caller retries.
      if (this.kinds.get(key) === current) this.kinds.delete(key);
      current.stopped = true;
      current.abort.abort();
      const message = `cannot watch ${kind} (${apiVersion}): ${(err as Error)?.message ?? String(err)}`;
      throw isTransient(err) ? new TransientError(message, { cause: err }) : new Error(message, { cause: err });
    });
  }

  /**
   * Lists the kind, then watches it from the list's resourceVersion (with bookmarks, so a reconnect resumes where it
   * left off). A watch the server ends is reopened; one whose resourceVersion is too old (410 Gone) lists afresh and
   * reports what changed meanwhile, deletions included. Resolves when the first list is in the cache.
   */
  private async startWatch(watch: KindWatch, apiVersion: string, kind: string): Promise<void> {
    const resource = await this.o.api.resourceOf(apiVersion, kind);
    if (!resource) throw new Error(`the API server does not serve ${kind} in ${apiVersion}`);
    const path = collectionPath(apiVersion, resource.name);
    const labelSelector = `${LABEL_ENV}=${this.o.env}`;
    const relist = async (): Promise<string> => {
      const { items, resourceVersion } = await this.o.api.listPath(path, labelSelector);
      const now = new Set<string>();
      for (const item of items) {
        const o = this.slim(withVersion(item, apiVersion, kind));
        const id = identity(o);
        now.add(id);
        const before = this.cache.get(id);
        this.cache.set(id, o);
        if (before?.metadata.resourceVersion !== o.metadata.resourceVersion) this.emit(before === undefined ? 'add' : 'update', o);
      }
      // Gone meanwhile: whatever the cache holds of this kind and the list does not (apply responses included).
      const prefix = `${groupOf(apiVersion)}/${kind}/`;
      for (const [id, gone] of [...this.cache]) {
        if (!id.startsWith(prefix) || now.has(id)) continue;
        this.cache.delete(id);
        this.emit('delete', gone);
      }
      return resourceVersion;
    };
    let rv = await relist();
    const loop = async () => {
      let failures = 0;
      while (!watch.stopped) {
        let expired = false;
        try {
          await this.o.api.watch(
            path,
            { labelSelector, resourceVersion: rv, allowWatchBookmarks: true, timeoutSeconds: 240 + Math.floor(Math.random() * 120) },
            (e) => {
              if (e.type === 'ERROR') {
                expired = e.object?.code === 410;
                if (!expired) throw new Error(e.object?.message ?? 'watch error');
                return;
              }
              if (e.object?.metadata?.resourceVersion) rv = e.object.metadata.resourceVersion;
              if (e.type === 'BOOKMARK') return;
              const o = this.slim(withVersion(e.object, apiVersion, kind));
              const id = identity(o);
              if (e.type === 'DELETED') {
                this.cache.delete(id);
                this.emit('delete', o);
              } else {
                const before = this.cache.has(id);
                this.cache.set(id, o);
                this.emit(before ? 'update' : 'add', o);
              }
            },
            watch.abort.signal,
          );
          failures = 0;
          if (expired) rv = await relist();
        } catch (err) {
          if (watch.stopped) return;
          failures++;
          this.o.log.warn({ kind, err: (err as Error)?.message ?? String(err) }, 'watch failed; reconnecting');
          await new Promise((r) => setTimeout(r, Math.min(1000 * failures, 10_000)));
          if (watch.stopped) return;
          // After a failure the resourceVersion may be gone: list again (it reports what changed meanwhile).
          rv = await relist().catch((e) => {
            if (statusCode(e) === undefined) this.o.log.warn({ kind, err: (e as Error).message }, 'relist failed');
            return rv;
          });
        }
      }
    };
    void loop();
  }

  /** A write's response: newer than the cache until the watch delivers it (never replaces a newer generation). */
  saw(o: KObject): void {
    this.slim(o);
    const cached = this.cache.get(identity(o));
    const gen = (x: KObject | undefined) => (x?.metadata.generation as number | undefined) ?? 0;
    if (!cached || gen(o) > gen(cached)) this.cache.set(identity(o), o);
  }

  private emit(type: WatchEvent, o: KObject): void {
    for (const fn of this.listeners) fn(type, o);
    const waits = this.byId.get(identity(o));
    if (waits) for (const fn of [...waits]) fn();
  }

  async close(): Promise<void> {
    for (const w of this.kinds.values()) {
      w.stopped = true;
      w.abort.abort();
    }
    this.kinds.clear();
  }
}

/** List items and watch events carry no apiVersion/kind on some servers; they come from the watched collection. */
function withVersion(o: KObject, apiVersion: string, kind: string): KObject {
  return o.apiVersion && o.kind ? o : { ...o, apiVersion, kind };
}
