import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { DesiredApp } from '../../core/model.js';
import { EventBus, type Stamped } from '../../core/events.js';
import { silentLogger } from '../../log.js';
import { Store } from '../../store/store.js';
import { tempDir, waitFor, writeTree } from '../../../test/helpers.js';
import { deploymentYaml, kubectl, kubectlWithInput, kubernetesSuite, uniqueNamespace } from '../../../test/k8s.js';
import { KubernetesTarget } from './kubernetes-target.js';

/** The Kubernetes target against the real test control plane; every test has its own namespace. */
kubernetesSuite('kubernetes target', () => {
  const tmp = tempDir('keelson-k8s-');
  const events: Stamped[] = [];
  const bus = new EventBus();
  bus.subscribe((e) => events.push(e));
  let store: Store;
  const targets: KubernetesTarget[] = [];

  beforeAll(() => {
    store = new Store(join(tmp.dir, 'state'));
  });
  afterAll(async () => {
    for (const t of targets) {
      await t.close();
      kubectl('delete', 'namespace', t.namespace, '--wait=false', '--ignore-not-found');
    }
    store.close();
    tmp.cleanup();
  });

  const newTarget = (prefix: string) => {
    const namespace = uniqueNamespace(prefix);
    const env = namespace;
    const t = new KubernetesTarget({ env, spec: { namespace }, store, bus, log: silentLogger(), requeue: () => undefined });
    targets.push(t);
    return { t, env, namespace };
  };

  const imageApp = (env: string, over: Partial<DesiredApp> = {}): DesiredApp => ({
    name: 'web',
    env,
    version: '1.0.0',
    artifact: {},
    command: [],
    vars: { GREETING: 'hello' },
    replicas: 1,
    port: 8080,
    dependsOn: [],
    progressDeadlineSeconds: 10,
    terminationGracePeriodSeconds: 5,
    source: { file: 'apps/web.yaml', line: 1, col: 1 },
    image: 'registry.example/web:1.0.0',
    ...over,
  });

  const manifestsApp = (env: string, dir: string, over: Partial<DesiredApp> = {}): DesiredApp => ({
    ...imageApp(env),
    name: 'shop',
    image: undefined,
    port: undefined,
    vars: {},
    manifests: { dir, replicas: false },
    artifact: { path: dir },
    ...over,
  });

  const ctx = { revision: 'a'.repeat(40), checkoutDir: tmp.dir };

  it('creates the namespace, applies an image app and reports it healthy; re-apply writes nothing', async () => {
    const { t, env, namespace } = newTarget('k-image');
    const first = await t.apply(imageApp(env), ctx);
    expect(first).toMatchObject({ ok: true, action: 'created' });
    expect(first.objects?.map((o) => [o.key, o.action])).toEqual([
      [`Service/${namespace}/web`, 'created'],
      [`Deployment/${namespace}/web`, 'created'],
    ]);
    expect(kubectl('get', 'namespace', namespace, '-o', 'name')).toBe(`namespace/${namespace}`);
    const [live] = await t.observe(env);
    expect(live).toMatchObject({ name: 'web', health: 'Healthy', version: '1.0.0', intact: true });
    expect(live.objects?.map((o) => o.health)).toEqual(['Healthy', 'Healthy']);
    expect(live.replicas).toMatchObject({ desired: 1, ready: 1 });

    const rv = kubectl('-n', namespace, 'get', 'deploy,svc', '-o', 'jsonpath={.items[*].metadata.resourceVersion}');
    const again = await t.apply(imageApp(env), ctx);
    expect(again.objects?.every((o) => o.action === 'unchanged')).toBe(true);
    expect(kubectl('-n', namespace, 'get', 'deploy,svc', '-o', 'jsonpath={.items[*].metadata.resourceVersion}')).toBe(rv);
    expect(t.templateOf(imageApp(env))).toBe(live.template);

    // One field: only the Deployment is written.
    const changed = await t.apply(imageApp(env, { vars: { GREETING: 'bonjour' } }), ctx);
    expect(changed.objects?.map((o) => o.action)).toEqual(['unchanged', 'configured']);
    expect(kubectl('-n', namespace, 'get', 'deploy/web', '-o', 'jsonpath={.spec.template.spec.containers[0].env[0].value}')).toBe('bonjour');
    expect(kubectl('-n', namespace, 'get', 'deploy/web', '-o', 'jsonpath={.metadata.managedFields[*].manager}')).toContain('keelson');
  });

  it('reverts kubectl scale and kubectl delete from watch events, recording field, old and new value', async () => {
    const { t, env, namespace } = newTarget('k-drift');
    expect((await t.apply(imageApp(env), ctx)).ok).toBe(true);
    const from = events.length;
    kubectl('-n', namespace, 'scale', 'deploy/web', '--replicas=3');
    const drift = await waitFor('drift event', () => events.slice(from).find((e) => e.type === 'drift.detected' && e.env === env), 10_000);
    expect(drift).toMatchObject({ kind: 'object-modified', object: `Deployment/${namespace}/web`, changes: [{ field: 'spec.replicas', old: 1, new: 3 }] });
    await waitFor('scale reverted', () => kubectl('-n', namespace, 'get', 'deploy/web', '-o', 'jsonpath={.spec.replicas}') === '1', 10_000);

    const from2 = events.length;
    kubectl('-n', namespace, 'delete', 'service/web', '--wait=false');
    await waitFor('delete drift', () => events.slice(from2).find((e) => e.type === 'drift.detected' && e.env === env && e.kind === 'object-deleted'), 10_000);
    await waitFor('service re-created', () => kubectl('-n', namespace, 'get', 'service', '-o', 'name').includes('service/web'), 10_000);
  });

  it('rolls back to the previous revision when the rollout misses its deadline', async () => {
    const { t, env, namespace } = newTarget('k-rollback');
    const dir = 'rollback';
    const write = (image: string, unschedulable: boolean) =>
      writeTree(join(tmp.dir, dir), {
        'deploy.yaml': deploymentYaml('api', { image, progressDeadlineSeconds: 3, unschedulable }),
      });
    write('registry.example/api:1', false);
    expect((await t.apply(manifestsApp(env, dir, { progressDeadlineSeconds: 3 }), ctx)).ok).toBe(true);
    write('registry.example/api:2', true);
    const failed = await t.apply(manifestsApp(env, dir, { version: '2', progressDeadlineSeconds: 3 }), ctx);
    expect(failed).toMatchObject({ ok: false, rolledBack: true });
    expect(failed.ok === false && failed.message).toMatch(/did not become healthy.*Deployment\/.*\/api/);
    expect(kubectl('-n', namespace, 'get', 'deploy/api', '-o', 'jsonpath={.spec.template.spec.containers[0].image}')).toBe('registry.example/api:1');
    await waitFor('healthy after rollback', async () => (await t.observe(env))[0]?.health === 'Healthy', 30_000);
    expect(events.some((e) => e.type === 'app.rolledBack' && e.env === env)).toBe(true);
  });

  it('a failed first deploy has nothing to roll back to: a retry of the same spec fails again without claiming a rollback', async () => {
    const { t, env, namespace } = newTarget('k-first');
    const dir = 'first';
    writeTree(join(tmp.dir, dir), {
      'deploy.yaml': deploymentYaml('api', { image: 'registry.example/api:1', progressDeadlineSeconds: 2, unschedulable: true }),
    });
    const desired = manifestsApp(env, dir, { progressDeadlineSeconds: 2 });
    const from = events.length;
    const first = await t.apply(desired, ctx);
    expect(first).toMatchObject({ ok: false, rolledBack: false });
    const retry = await t.apply(desired, ctx);
    expect(retry).toMatchObject({ ok: false, rolledBack: false });
    expect(retry.ok === false && retry.message).toMatch(/did not become healthy/);
    expect(retry.ok === false && retry.message).not.toMatch(/rolled back/);
    expect(events.slice(from).some((e) => e.type === 'app.rolledBack' && e.env === env)).toBe(false);
    // The failing Deployment stays (as Argo CD leaves it) and is the app's recorded state, for prune and status.
    expect(kubectl('-n', namespace, 'get', 'deploy', '-o', 'name')).toBe('deployment.apps/api');
    expect((await t.observe(env))[0]).toMatchObject({ name: 'shop', health: 'Degraded' });
  });

  it('an unreachable API server is a transient failure, retried by the engine, never held as a failed spec', async () => {
    const kc = parse(readFileSync(process.env.KUBECONFIG!, 'utf8'));
    kc.clusters[0].cluster.server = 'https://127.0.0.1:1';
    const kubeconfig = join(tmp.dir, 'unreachable.kubeconfig');
    writeFileSync(kubeconfig, JSON.stringify(kc));
    const namespace = uniqueNamespace('k-down');
    const t = new KubernetesTarget({ env: namespace, spec: { namespace, kubeconfig }, store, bus, log: silentLogger(), requeue: () => undefined });
    targets.push(t);
    const r = await t.apply(imageApp(namespace), ctx);
    expect(r).toMatchObject({ ok: false, transient: true });
    expect(r.ok === false && r.message).toMatch(/cannot reach the Kubernetes API server https:\/\/127\.0\.0\.1:1/);
  });

  it('prunes what is no longer declared, skips kept objects, and follows sync waves and Argo CD hooks', async () => {
    const { t, env, namespace } = newTarget('k-argo');
    const dir = 'argo';
    writeTree(join(tmp.dir, dir), {
      'a-config.yaml': `apiVersion: v1
kind: ConfigMap
metadata: { name: settings, annotations: { argocd.argoproj.io/sync-wave: "1" } }
data: { mode: fast }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: old }
data: { x: y }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: kept, annotations: { kustomize.toolkit.fluxcd.io/prune: disabled } }
data: { x: y }
`,
      'migrate.yaml': `apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations: { argocd.argoproj.io/hook: PreSync, argocd.argoproj.io/hook-delete-policy: HookSucceeded }
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{ name: m, image: registry.example/migrate:1 }]
`,
    });
    const first = await t.apply(manifestsApp(env, dir), ctx);
    expect(first.ok).toBe(true);
    const keys = first.objects!.map((o) => o.key);
    // The PreSync hook ran first, then wave 0, then wave 1.
    expect(keys[0]).toBe(`Job/${namespace}/migrate`);
    expect(keys.indexOf(`ConfigMap/${namespace}/settings`)).toBeGreaterThan(keys.indexOf(`ConfigMap/${namespace}/old`));
    // HookSucceeded: the Job is gone after it completed.
    await waitFor('hook deleted', () => !kubectl('-n', namespace, 'get', 'jobs', '-o', 'name').includes('migrate'), 20_000);

    writeTree(join(tmp.dir, dir), { 'a-config.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: settings }\ndata: { mode: fast }\n' });
    const second = await t.apply(manifestsApp(env, dir), ctx);
    expect(second.ok).toBe(true);
    expect(second.objects!.filter((o) => o.action === 'deleted' || o.action === 'skipped').map((o) => [o.key, o.action])).toEqual([
      [`ConfigMap/${namespace}/old`, 'deleted'],
      [`ConfigMap/${namespace}/kept`, 'skipped'],
    ]);
    const names = kubectl('-n', namespace, 'get', 'configmaps', '-o', 'name');
    expect(names).toContain('configmap/kept');
    expect(names).not.toContain('configmap/old');
  });

  it('diffs server-side with defaults and managed fields normalised away', async () => {
    const { t, env } = newTarget('k-diff');
    expect((await t.apply(imageApp(env), ctx)).ok).toBe(true);
    expect((await t.diff(imageApp(env), ctx)).map((d) => d.action)).toEqual(['none', 'none']);
    const diffs = await t.diff(imageApp(env, { replicas: 2 }), ctx);
    const deployment = diffs.find((d) => d.key.startsWith('Deployment/'))!;
    expect(deployment.action).toBe('update');
    expect(deployment.changes).toEqual([{ path: 'spec.replicas', live: 1, desired: 2 }]);
  });

  it('names a field the API server does not know, in a new object and in a changed one, before a sync would drop it', async () => {
    const { t, env } = newTarget('k-strict');
    const dir = 'strict';
    const deployment = (extra: string) => `apiVersion: apps/v1
kind: Deployment
metadata: { name: web }
spec:
  ${extra}
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec: { containers: [{ name: web, image: registry.example/web:1 }] }
`;
    writeTree(join(tmp.dir, dir), { 'web.yaml': deployment('replica: 3') });
    const created = await t.diff(manifestsApp(env, dir), ctx);
    expect(created[0]).toMatchObject({ action: 'create', changes: [{ path: '' }, { path: '(invalid)' }] });
    expect(String(created[0]!.changes[1]!.desired)).toMatch(/replica/);
    writeTree(join(tmp.dir, dir), { 'web.yaml': deployment('replicas: 1') });
    expect((await t.apply(manifestsApp(env, dir), ctx)).ok).toBe(true);
    writeTree(join(tmp.dir, dir), { 'web.yaml': deployment('replicas: 2\n  paused: false\n  progresDeadlineSeconds: 30') });
    const changed = await t.diff(manifestsApp(env, dir), ctx);
    expect(changed[0]).toMatchObject({ action: 'update', changes: [{ path: '(invalid)' }] });
    expect(String(changed[0]!.changes[0]!.desired)).toMatch(/progresDeadlineSeconds/);
  });

  it('reports a conflict with another field manager per object, and takes the field over with force', async () => {
    const { t, env, namespace } = newTarget('k-conflict');
    const dir = 'conflict';
    const write = (data: string) => writeTree(join(tmp.dir, dir), { 'cm.yaml': `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: settings }\ndata: { ${data} }\n` });
    write('a: "1"');
    expect((await t.apply(manifestsApp(env, dir), ctx)).ok).toBe(true);
    // Another manager owns `mode`, a field Keelson does not declare (so it is not drift).
    const other = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', namespace }, data: { mode: 'theirs' } };
    kubectlWithInput(JSON.stringify(other), 'apply', '--server-side', '--field-manager=other', '-f', '-');
    write('a: "1", mode: ours');
    const conflict = await t.apply(manifestsApp(env, dir), ctx);
    expect(conflict.ok).toBe(false);
    expect(conflict.objects?.find((o) => o.action === 'failed')?.message).toMatch(/ConfigMap\/.*\/settings apply conflict: .*other/);
    const forced = await t.apply(manifestsApp(env, dir), { ...ctx, force: true });
    expect(forced.ok).toBe(true);
    expect(kubectl('-n', namespace, 'get', 'configmap/settings', '-o', 'jsonpath={.data.mode}')).toBe('ours');
  });

  it('deletes an app with everything it applied', async () => {
    const { t, env, namespace } = newTarget('k-delete');
    expect((await t.apply(imageApp(env), ctx)).ok).toBe(true);
    await t.delete(env, 'web');
    expect(await t.observe(env)).toEqual([]);
    await waitFor('objects gone', () => kubectl('-n', namespace, 'get', 'deploy,svc', '-o', 'name') === '', 20_000);
  });
});
