/**
 * Live objects by watch, not by polling: one informer (list + watch) per managed kind, all namespaces, selected by
 * Keelson's environment label. Keeps a cache that observe, apply and drift detection read without API requests.
 */
import { makeInformer, type Informer, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../../log.js';
import { collectionPath, type ObjectApi } from './client.js';
import { identity, LABEL_ENV, type KObject } from './objects.js';

export type WatchEvent = 'add' | 'update' | 'delete';

interface KindWatch {
  /** Set once discovery answered; absent while it is pending. */
  informer?: Informer<KObject>;
  synced: Promise<void>;
  stopped: boolean;
}

export class ObjectWatch {
  private readonly kinds = new Map<string, KindWatch>();
  private readonly cache = new Map<string, KObject>();
  private readonly listeners = new Set<(type: WatchEvent, o: KObject) => void>();
  /** Listeners of single objects (health waits): an event reaches only the waits on that object. */
  private readonly byId = new Map<string, Set<() => void>>();

  constructor(
    private readonly o: { kc: KubeConfig; api: ObjectApi; env: string; log: Logger },
  ) {}

  get(o: KObject | { apiVersion: string; kind: string; namespace?: string; name: string }): KObject | undefined {
    return this.cache.get(identity(o as KObject));
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
      const watch: KindWatch = { synced: Promise.resolve(), stopped: false };
      watch.synced = this.startInformer(watch, apiVersion, kind);
      this.kinds.set(key, watch);
      w = watch;
    }
    const current = w;
    await current.synced.catch(() => {
      // The first list failed: drop it so the next caller retries.
      if (this.kinds.get(key) === current) this.kinds.delete(key);
      current.stopped = true;
      void current.informer?.stop().catch(() => undefined);
      throw new Error(`cannot watch ${kind} (${apiVersion})`);
    });
  }

  private async startInformer(watch: KindWatch, apiVersion: string, kind: string): Promise<void> {
    const resource = await this.o.api.resourceOf(apiVersion, kind);
    if (!resource) throw new Error(`the API server does not serve ${kind} in ${apiVersion}`);
    if (watch.stopped) return;
    const path = collectionPath(apiVersion, resource.name);
    const selector = `${LABEL_ENV}=${this.o.env}`;
    const informer = makeInformer<KObject>(
      this.o.kc,
      path,
      () => this.o.api.list(apiVersion, kind, undefined, undefined, undefined, undefined, undefined, selector) as any,
      selector,
    );
    watch.informer = informer;
    informer.on('add', (o) => this.emit('add', this.put(slim(o), apiVersion, kind)));
    informer.on('update', (o) => this.emit('update', this.put(slim(o), apiVersion, kind)));
    informer.on('delete', (o) => {
      const obj = withVersion(o, apiVersion, kind);
      this.cache.delete(identity(obj));
      this.emit('delete', obj);
    });
    informer.on('error', (err: unknown) => {
      if (watch.stopped) return;
      // A failed list or watch stops the informer: start it again (it lists afresh).
      this.o.log.warn({ kind, err: (err as Error)?.message ?? String(err) }, 'watch failed; restarting');
      setTimeout(() => {
        if (!watch.stopped) void informer.start().catch(() => undefined);
      }, 1000).unref();
    });
    // start() resolves once the first list is in and the watch is open.
    await informer.start();
    for (const o of informer.list()) this.put(slim(o), apiVersion, kind);
  }

  /** A write's response: newer than the cache until the watch delivers it (never replaces a newer generation). */
  saw(o: KObject): void {
    const cached = this.cache.get(identity(o));
    const gen = (x: KObject | undefined) => (x?.metadata.generation as number | undefined) ?? 0;
    if (!cached || gen(o) > gen(cached)) this.cache.set(identity(o), o);
  }

  private put(o: KObject, apiVersion: string, kind: string): KObject {
    const obj = withVersion(o, apiVersion, kind);
    this.cache.set(identity(obj), obj);
    return obj;
  }

  private emit(type: WatchEvent, o: KObject): void {
    for (const fn of this.listeners) fn(type, o);
    const waits = this.byId.get(identity(o));
    if (waits) for (const fn of [...waits]) fn();
  }

  async close(): Promise<void> {
    for (const w of this.kinds.values()) {
      w.stopped = true;
      await w.informer?.stop().catch(() => undefined);
    }
    this.kinds.clear();
  }
}

/** List items carry no apiVersion/kind; the informer's objects get them from the watched collection. */
function withVersion(o: KObject, apiVersion: string, kind: string): KObject {
  return o.apiVersion && o.kind ? o : { ...o, apiVersion, kind };
}

/**
 * Drops what nothing here reads from a watched object, in place (the informer's own cache holds the same object):
 * managed fields are often half of an object's size, and thousands of objects are cached.
 */
function slim(o: KObject): KObject {
  if (o?.metadata?.managedFields) delete o.metadata.managedFields;
  return o;
}
