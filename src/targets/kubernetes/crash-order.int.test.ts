import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { commitAll, freePort, gitInit, tempDir, crashTestEngine, waitFor, writeTree } from '../../../test/helpers.js';
import { kubectl, kubernetesSuite, uniqueNamespace } from '../../../test/k8s.js';

/**
 * Crash-safe inventory order on Kubernetes: a real `keelson up` is killed (SIGKILL) exactly where an apply has
 * written the target's record but not finished the sync (`KEELSON_TEST_KILL_AT`, kubernetes-target.ts): once before
 * the PostSync hooks ran, once after the target finished but before the engine recorded the sync, once after the
 * objects were written but before anything recorded them. The next engine must converge: PostSync runs (again, for
 * the new revision, although every object is already as desired), and an app the engine had not recorded is pruned
 * when it is no longer declared.
 */
kubernetesSuite('kubernetes: an engine killed between the target record and the engine record converges', () => {
  const tmp = tempDir('keelson-k8s-crash-');
  const ops = join(tmp.dir, 'ops');
  const state = join(tmp.dir, 'state');
  const namespace = uniqueNamespace('k-crash');
  const token = 'kls_operator_token_for_crash_order_0123456';
  let api: string;

  const files = (apps: string[], greeting = 'hello') => ({
    'apps/shop.yaml': `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: shop }
spec:
  version: "1"
  manifests: ../manifests/shop
  rollout: { progressDeadlineSeconds: 20 }
---
apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: extra }
spec:
  version: "1"
  manifests: ../manifests/extra
`,
    'manifests/shop/config.yaml': `apiVersion: v1
kind: ConfigMap
metadata: { name: shop-config }
data: { greeting: ${greeting} }
`,
    'manifests/shop/smoke.yaml': `apiVersion: batch/v1
kind: Job
metadata:
  name: smoke
  annotations: { argocd.argoproj.io/hook: PostSync, argocd.argoproj.io/hook-delete-policy: BeforeHookCreation }
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers: [{ name: c, image: registry.example/smoke:1 }]
`,
    'manifests/extra/config.yaml': `apiVersion: v1
kind: ConfigMap
metadata: { name: extra-config }
data: { a: b }
`,
    'envs/dev.yaml': `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata: { name: dev }
spec:
  target: { kubernetes: { namespace: ${namespace} } }
  apps:
${apps.map((a) => `    ${a}: {}\n`).join('')}`,
  });

  /** Starts `keelson up`; `killAt` makes it SIGKILL itself at that point of an apply. */
  const engine = crashTestEngine({ ops, state, api: () => api, token, logDir: tmp.dir });
  const up = (killAt?: 'written' | 'recorded' | 'applied') => engine.up(killAt);
  const stop = () => engine.stop();
  const appOf = async (name: string) => {
    const res = await fetch(`${api}/api/v1/status`, { headers: { authorization: `Bearer ${token}` } }).catch(() => undefined);
    if (!res?.ok) return undefined;
    return (await res.json()).environments?.find((e: { name: string }) => e.name === 'dev')?.apps.find((a: { name: string }) => a.name === name);
  };
  const exists = (kind: string, name: string) => kubectl('-n', namespace, 'get', kind, name, '--ignore-not-found', '-o', 'name') !== '';
  const jobSucceeded = (name: string) => kubectl('-n', namespace, 'get', 'job', name, '--ignore-not-found', '-o', 'jsonpath={.status.succeeded}') === '1';

  beforeAll(async () => {
    api = `http://127.0.0.1:${await freePort()}`;
    writeTree(ops, files(['shop']));
    gitInit(ops);
    commitAll(ops, 'shop');
  });
  afterAll(async () => {
    engine.kill();
    kubectl('delete', 'namespace', namespace, '--wait=false', '--ignore-not-found');
    tmp.cleanup();
  });

  it('killed after the record, before PostSync: the next engine runs PostSync; killed before the engine recorded a new app: it is recorded and pruned later; killed between the writes and the record: PostSync runs again', async () => {
    // 1. Killed right after the target recorded shop's objects, before its PostSync hook ran.
    expect(await up('recorded')).toBe('SIGKILL');
    expect(exists('configmap', 'shop-config')).toBe(true);
    expect(exists('job', 'smoke')).toBe(false);

    // The next engine sees the unfinished sync and finishes it: the PostSync hook runs, the app is Synced.
    void up();
    await waitFor('PostSync hook ran', () => jobSucceeded('smoke'), 90_000);
    await waitFor('shop synced', async () => (await appOf('shop'))?.sync === 'Synced', 60_000);
    await stop();

    // 2. A new app: killed after the target finished it, before the engine recorded the sync.
    writeTree(ops, files(['shop', 'extra']));
    commitAll(ops, 'extra');
    expect(await up('applied')).toBe('SIGKILL');
    expect(exists('configmap', 'extra-config')).toBe(true);

    // The next engine finishes the sync (records the app), so that removing it from the environment prunes it.
    void up();
    await waitFor('extra synced', async () => (await appOf('extra'))?.sync === 'Synced', 90_000);
    writeTree(ops, files(['shop']));
    commitAll(ops, 'extra removed');
    await waitFor('extra pruned', () => !exists('configmap', 'extra-config'), 90_000);
    expect(exists('configmap', 'shop-config')).toBe(true);
    await stop();

    // 3. A change killed after its objects were written, before anything recorded them: the next engine finds every
    // object already as desired, and must still finish the sync: its PostSync hook runs again for the new revision.
    const smokeUid = kubectl('-n', namespace, 'get', 'job', 'smoke', '-o', 'jsonpath={.metadata.uid}');
    writeTree(ops, files(['shop'], 'bonjour'));
    commitAll(ops, 'greeting');
    expect(await up('written')).toBe('SIGKILL');
    expect(kubectl('-n', namespace, 'get', 'configmap', 'shop-config', '-o', 'jsonpath={.data.greeting}')).toBe('bonjour');
    void up();
    await waitFor('PostSync hook ran again', () => kubectl('-n', namespace, 'get', 'job', 'smoke', '--ignore-not-found', '-o', 'jsonpath={.metadata.uid}') !== smokeUid && jobSucceeded('smoke'), 90_000);
    await waitFor('shop synced', async () => (await appOf('shop'))?.sync === 'Synced', 60_000);
    await stop();
  }, 300_000);
});
