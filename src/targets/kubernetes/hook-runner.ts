/** The HookRunner (hooks.ts) the Kubernetes target runs Argo CD and Helm hooks with. */
import { applyObject } from './apply.js';
import { apiMessage, isNotFound, isTransient, type Cluster } from './client.js';
import { hookRunSelector, hookState, isGeneratedHook, type HookRunner } from './hooks.js';
import { FIELD_MANAGER, formatKey, type KObject } from './objects.js';
import type { ObjectWatch } from './watch.js';

/** How hooks run on the cluster: server-side applied (generateName ones created), deleted and awaited on the watch. */
export function hookRunner(cluster: Cluster, watch: ObjectWatch): HookRunner {
  const gone = (o: KObject, timeoutMs: number) =>
    new Promise<void>((resolve) => {
      if (!watch.get(o)) return resolve();
      const timer = setTimeout(finish, timeoutMs);
      const off = watch.onObjects([o], () => !watch.get(o) && finish());
      function finish() {
        clearTimeout(timer);
        off();
        resolve();
      }
    });
  return {
    apply: async (o) => {
      await watch.ensure(o.apiVersion, o.kind);
      if (!isGeneratedHook(o)) return { result: (await applyObject(cluster.api, o, watch.get(o), { force: true })).result };
      // generateName: created, never applied (server-side apply needs a name); the server's name is the run's.
      try {
        const created = await cluster.api.create(o, FIELD_MANAGER);
        watch.saw(created);
        return { result: { key: formatKey(created), action: 'created' }, created };
      } catch (err) {
        if (isTransient(err)) throw err;
        return { result: { key: formatKey(o), action: 'failed', message: `${formatKey(o)} create failed: ${apiMessage(err)}` } };
      }
    },
    deleteRuns: async (o) => {
      await watch.ensure(o.apiVersion, o.kind);
      const runs = await cluster.api.list(o.apiVersion, o.kind, { namespace: o.metadata.namespace, labelSelector: hookRunSelector(o) });
      await Promise.all(
        runs.map(async (run) => {
          await cluster.api.delete(run, 'Foreground').catch((err) => {
            if (!isNotFound(err)) throw err;
          });
          await gone(run, 60_000);
        }),
      );
    },
    deleteAndWait: async (o) => {
      await watch.ensure(o.apiVersion, o.kind);
      if (!watch.get(o)) return;
      await cluster.api.delete(o, 'Foreground').catch((err) => {
        if (!isNotFound(err)) throw err;
      });
      await gone(o, 60_000);
    },
    waitFor: (o, timeoutMs) =>
      new Promise((resolve) => {
        const check = () => {
          const s = hookState(watch.get(o));
          if (s !== 'running') finish(s);
        };
        const timer = setTimeout(() => finish('timeout'), timeoutMs);
        const off = watch.onObjects([o], check);
        function finish(s: 'succeeded' | 'failed' | 'timeout') {
          clearTimeout(timer);
          off();
          resolve(s);
        }
        check();
      }),
  };
}
