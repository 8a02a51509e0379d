/**
 * What the benches see of the cluster: a list, then a watch from the list's resourceVersion (as an informer does),
 * through Keelson's own REST client. `state` maps each object's key to `project(object)` and stays current; an
 * expired resourceVersion (410) lists again. `until(what, pred, timeoutMs)` resolves with the time (`now()`) at the
 * first event after which `pred(state)` holds. Used for Deployments (Keelson, kubectl, Flux, sharded engines) and
 * for Flux's own objects.
 */
import { now, sleep } from './lib.mjs';

const nsName = (o) => `${o.metadata.namespace}/${o.metadata.name}`;

/**
 * @param {{ listPath: Function, watch: Function }} api  a client from dist/targets/kubernetes/client.js
 * @param {string} path  e.g. /apis/apps/v1/deployments
 * @param {{ selector?: string, keyOf?: (o: any) => string, project?: (o: any) => any, onCleanup: (fn: () => void) => void }} options
 */
export function liveWatch(api, path, { selector, keyOf = nsName, project = (o) => o, onCleanup }) {
  const abort = new AbortController();
  const state = new Map();
  const waiters = new Set();
  const listeners = new Set();
  const record = (o) => {
    state.set(keyOf(o), project(o));
    const t = now();
    for (const fn of listeners) fn(o, t);
    for (const w of waiters) w();
  };
  const relist = async () => {
    const { items, resourceVersion } = await api.listPath(path, selector);
    for (const o of items) record(o);
    return resourceVersion;
  };
  const started = relist().then((resourceVersion) => {
    void (async () => {
      let rv = resourceVersion;
      while (!abort.signal.aborted) {
        await api
          .watch(path, { ...(selector ? { labelSelector: selector } : {}), resourceVersion: rv, allowWatchBookmarks: true }, (e) => {
            rv = e.object?.metadata?.resourceVersion ?? rv;
            if (e.type === 'ADDED' || e.type === 'MODIFIED') record(e.object);
            else if (e.type === 'DELETED') state.delete(keyOf(e.object));
          }, abort.signal)
          .catch(async (err) => {
            if (abort.signal.aborted) return;
            if (/410|Expired/.test(String(err?.message ?? err))) rv = (await relist().catch(() => undefined)) ?? rv;
            await sleep(500);
          });
      }
    })();
  });
  onCleanup(() => abort.abort());
  return {
    started,
    state,
    /** Calls `fn(object, time)` on every object listed or changed; returns a function that stops it. */
    onEvent(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    until(what, pred, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!pred(state)) return;
          done();
          resolve(now());
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
  };
}
