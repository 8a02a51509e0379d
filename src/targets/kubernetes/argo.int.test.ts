import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import type { DesiredApp } from '../../core/model.js';
import { EventBus, type Stamped } from '../../core/events.js';
import { silentLogger } from '../../log.js';
import { Store } from '../../store/store.js';
import { Engine } from '../../engine/engine.js';
import { commitAll, gitInit, waitFor, writeTree } from '../../../test/helpers.js';
import { kubectl, kubernetesSuite, manifestsAppOf, suiteTargets, uniqueNamespace } from '../../../test/k8s.js';
import { KubernetesTarget } from './kubernetes-target.js';

const FIXTURES = join(import.meta.dirname, '../../../test/fixtures/argo');

/**
 * Argo CD's example shapes (test/fixtures/argo, written for these tests) on the real control plane: sync waves,
 * hooks written with generateName and each delete policy, SyncFail, Kustomize with hooks, sync options
 * (Prune=false, Prune=confirm, IgnoreExtraneous, Replace, CreateNamespace) and ignoreDifferences against another
 * controller that owns replicas.
 */
kubernetesSuite('kubernetes target: Argo CD compatibility', () => {
  const suite = suiteTargets('argo');
  const { tmp, bus, extraNamespaces } = suite;
  const newTarget = (prefix: string) => suite.newTarget(prefix);
  const events: Stamped[] = [];
  bus.subscribe((e) => events.push(e));

  /** A copy of fixture `name` in the checkout, as `dir`, that the test may change. */
  const checkout = (name: string, dir = name) => {
    const to = join(tmp.dir, dir);
    rmSync(to, { recursive: true, force: true });
    cpSync(join(FIXTURES, name), to, { recursive: true });
    return to;
  };

  const app = (env: string, dir: string, over: Partial<DesiredApp> = {}): DesiredApp => manifestsAppOf('shop', env, dir, { progressDeadlineSeconds: 20, ...over });
  const ctx = { revision: 'a'.repeat(40), checkoutDir: tmp.dir };

  const jobs = (namespace: string, prefix: string) =>
    kubectl('-n', namespace, 'get', 'jobs', '-o', 'jsonpath={.items[*].metadata.name}')
      .split(' ')
      .filter((n) => n.startsWith(prefix));

  it('sync waves: -1, 0, 1 in order, each healthy before the next, a Sync hook in its wave; generateName PreSync and PostSync hooks around them', async () => {
    const { t, env, namespace } = newTarget('argo-waves');
    const dir = checkout('sync-waves');
    const first = await t.apply(app(env, 'sync-waves'), ctx);
    expect(first.ok, first.ok ? '' : first.message).toBe(true);
    const keys = first.objects!.map((o) => o.key);
    expect(keys[0]).toMatch(new RegExp(`^Job/${namespace}/schema-[a-z0-9]{5}$`));
    expect(keys.slice(1, 3)).toEqual([`ConfigMap/${namespace}/settings`, `Deployment/${namespace}/backend`]);
    expect(keys[3]).toMatch(new RegExp(`^Job/${namespace}/maintenance-[a-z0-9]{5}$`)); // the Sync hook of wave 0
    expect(keys[4]).toBe(`Deployment/${namespace}/frontend`);
    expect(keys[5]).toMatch(new RegExp(`^Job/${namespace}/smoke-[a-z0-9]{5}$`));
    // Wave 1 started once wave 0 was available.
    const available = kubectl('-n', namespace, 'get', 'deploy/backend', '-o', 'jsonpath={.status.conditions[?(@.type=="Available")].lastTransitionTime}');
    const created = kubectl('-n', namespace, 'get', 'deploy/frontend', '-o', 'jsonpath={.metadata.creationTimestamp}');
    expect(Date.parse(available)).toBeLessThanOrEqual(Date.parse(created));
    // BeforeHookCreation keeps the last run until the next sync; HookSucceeded deletes the run once it succeeded.
    const [schema] = jobs(namespace, 'schema-');
    expect(`Job/${namespace}/${schema}`).toBe(keys[0]);
    expect(kubectl('-n', namespace, 'get', `job/${schema}`, '-o', 'jsonpath={.metadata.labels.keelson\\.dev/hook}')).toMatch(/^[0-9a-f]{16}$/);
    await waitFor('smoke run deleted', () => jobs(namespace, 'smoke-').length === 0, 20_000);
    // Hook runs are never part of the app: not in its objects, not drift.
    const [live] = await t.observe(env);
    expect(live).toMatchObject({ health: 'Healthy', intact: true });
    expect(live.objects!.map((o) => o.key)).toEqual([`ConfigMap/${namespace}/settings`, `Deployment/${namespace}/backend`, `Deployment/${namespace}/frontend`]);
    expect(live.outOfSync).toBeUndefined();

    writeFileSync(join(dir, '00-config.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  annotations: { argocd.argoproj.io/sync-wave: "-1" }\ndata: { mode: staging }\n');
    const second = await t.apply(app(env, 'sync-waves'), ctx);
    expect(second.ok, second.ok ? '' : second.message).toBe(true);
    const runs = jobs(namespace, 'schema-');
    expect(runs).toHaveLength(1); // the earlier run was deleted before the new one was created
    expect(runs[0]).not.toBe(schema);
  });

  it('delete policies of generateName hooks: BeforeHookCreation replaces the last run, HookSucceeded deletes it', async () => {
    const { t, env, namespace } = newTarget('argo-hooks');
    const dir = checkout('hooks');
    expect((await t.apply(app(env, 'hooks'), ctx)).ok).toBe(true);
    const [migrate] = jobs(namespace, 'migrate-');
    expect(migrate).toBeDefined();
    await waitFor('notify run deleted', () => jobs(namespace, 'notify-').length === 0, 20_000);
    writeFileSync(join(dir, 'release.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: release }\ndata: { version: "2" }\n');
    const second = await t.apply(app(env, 'hooks'), ctx);
    expect(second.ok, second.ok ? '' : second.message).toBe(true);
    expect(jobs(namespace, 'migrate-')).toEqual([expect.not.stringMatching(new RegExp(`^${migrate}$`))]);
  });

  it('a failed generateName PostSync hook is deleted by HookFailed, and the SyncFail hook runs', async () => {
    const { t, env, namespace } = newTarget('argo-syncfail');
    checkout('sync-fail');
    const r = await t.apply(app(env, 'sync-fail'), ctx);
    expect(r.ok).toBe(false);
    expect(r.ok === false && r.message).toMatch(new RegExp(`^PostSync hook Job/${namespace}/verify-[a-z0-9]{5} failed`));
    expect(r.objects!.map((o) => o.key).at(-1)).toMatch(new RegExp(`^Job/${namespace}/page-[a-z0-9]{5}$`));
    await waitFor('failed run deleted', () => jobs(namespace, 'verify-').length === 0, 20_000);
    const [page] = jobs(namespace, 'page-');
    expect(kubectl('-n', namespace, 'get', `job/${page}`, '-o', 'jsonpath={.status.succeeded}')).toBe('1');
  });

  it('Kustomize with hooks: named PreSync and PostSync Jobs around the build, labels applied by kustomize', async () => {
    const { t, env, namespace } = newTarget('argo-kustomize');
    checkout('kustomize-hooks');
    const first = await t.apply(app(env, 'kustomize-hooks'), ctx);
    expect(first.ok, first.ok ? '' : first.message).toBe(true);
    expect(first.objects!.map((o) => o.key)).toEqual([`Job/${namespace}/before`, `Deployment/${namespace}/shop`, `Job/${namespace}/after`]);
    expect(kubectl('-n', namespace, 'get', 'deploy/shop', '-o', 'jsonpath={.metadata.labels.team}')).toBe('shop');
    await waitFor('after deleted', () => jobs(namespace, 'after').length === 0, 20_000);
    const uid = kubectl('-n', namespace, 'get', 'job/before', '-o', 'jsonpath={.metadata.uid}');
    expect((await t.apply(app(env, 'kustomize-hooks'), ctx)).ok).toBe(true);
    expect(kubectl('-n', namespace, 'get', 'job/before', '-o', 'jsonpath={.metadata.uid}')).not.toBe(uid); // run again
  });

  it('Prune=false survives its removal from git (OutOfSync until IgnoreExtraneous); Prune=confirm waits for confirmation', async () => {
    const { t, env, namespace } = newTarget('argo-prune');
    const dir = checkout('prune-options');
    expect((await t.apply(app(env, 'prune-options'), ctx)).ok).toBe(true);
    rmSync(join(dir, 'objects.yaml'));
    const second = await t.apply(app(env, 'prune-options'), ctx);
    expect(second.ok, second.ok ? '' : second.message).toBe(true);
    expect(second.message).toMatch(new RegExp(`; waiting for prune confirmation: ConfigMap/${namespace}/precious; run \`keelson sync --env ${env} --app shop --confirm-prune\` to delete it$`));
    const byKey = new Map(second.objects!.map((o) => [o.key, o]));
    expect(byKey.get(`ConfigMap/${namespace}/plain`)?.action).toBe('deleted');
    expect(byKey.get(`ConfigMap/${namespace}/keep`)).toMatchObject({ action: 'skipped', message: expect.stringContaining('Prune=false') });
    expect(byKey.get(`ConfigMap/${namespace}/precious`)).toMatchObject({ action: 'skipped', message: expect.stringContaining('waiting for prune confirmation') });
    const names = () => kubectl('-n', namespace, 'get', 'configmaps', '-l', `keelson.dev/env=${env}`, '-o', 'jsonpath={.items[*].metadata.name}').split(' ').sort();
    await waitFor('plain pruned', () => !names().includes('plain'), 10_000);
    expect(names()).toEqual(['keep', 'precious', 'remaining']);

    let [live] = await t.observe(env);
    expect(live.pendingPrune).toEqual([`ConfigMap/${namespace}/precious`]);
    expect(live.outOfSync).toContain(`waiting for prune confirmation: ConfigMap/${namespace}/precious; run \`keelson sync --env ${env} --app shop --confirm-prune\``);
    expect(live.outOfSync).toContain(`kept by Prune=false: ConfigMap/${namespace}/keep`);
    expect(live.intact).toBe(true);

    // IgnoreExtraneous takes the kept object out of the sync status (it stays in the cluster).
    kubectl('-n', namespace, 'annotate', 'configmap/keep', 'argocd.argoproj.io/compare-options=IgnoreExtraneous');
    await waitFor('keep ignored', async () => !(await t.observe(env))[0].outOfSync?.includes('Prune=false'), 10_000);

    // An apply without confirmation keeps it waiting; a confirmed one deletes it.
    const again = await t.apply(app(env, 'prune-options'), ctx);
    expect(again.objects!.find((o) => o.key.endsWith('/precious'))).toMatchObject({ action: 'skipped' });
    const confirmed = await t.apply(app(env, 'prune-options'), { ...ctx, confirmPrune: true });
    expect(confirmed.objects!.find((o) => o.key.endsWith('/precious'))).toMatchObject({ action: 'deleted' });
    await waitFor('precious pruned', () => !names().includes('precious'), 10_000);
    expect(names()).toEqual(['keep', 'remaining']);
    [live] = await t.observe(env);
    expect(live.outOfSync).toBeUndefined();
    expect(live.pendingPrune).toBeUndefined();
  });

  it('ignoreDifferences by field manager: replicas an HPA-like controller owns are neither reverted nor taken back on the next sync', async () => {
    const { t, env, namespace } = newTarget('argo-hpa');
    const dir = checkout('drift-hpa');
    const spec = app(env, 'drift-hpa', { ignoreDifferences: [{ group: 'apps', kind: 'Deployment', name: 'web', managedFieldsManagers: ['hpa-sim'] }] });
    expect((await t.apply(spec, ctx)).ok).toBe(true);
    const replicas = () => kubectl('-n', namespace, 'get', 'deploy/web', '-o', 'jsonpath={.spec.replicas}');
    expect(replicas()).toBe('2');
    const from = events.length;
    // What a HorizontalPodAutoscaler does: update the scale subresource as its own field manager.
    kubectl('-n', namespace, 'patch', 'deploy/web', '--subresource=scale', '--type=merge', '-p', '{"spec":{"replicas":4}}', '--field-manager=hpa-sim');
    // observe reads the watch cache: once it shows 4, the drift check of that event has run.
    await waitFor('watch saw the scale', async () => (await t.observe(env))[0].replicas.desired === 4, 10_000);
    expect((await t.observe(env))[0].intact).toBe(true);
    expect(events.slice(from).filter((e) => e.type === 'drift.detected' && e.env === env)).toEqual([]);
    expect((await t.diff(spec, ctx)).find((d) => d.key.startsWith('Deployment/'))?.action).toBe('none');

    // A change elsewhere in the same Deployment is applied; replicas stay the other manager's.
    writeFileSync(join(dir, 'web.yaml'), readFileSync(join(FIXTURES, 'drift-hpa/web.yaml'), 'utf8').replace('value: hello', 'value: bonjour'));
    const diff = (await t.diff(spec, ctx)).find((d) => d.key.startsWith('Deployment/'))!;
    expect(diff.changes.map((c) => c.path)).toEqual(['spec.template.spec.containers[0].env[0].value']);
    const next = await t.apply(spec, ctx);
    expect(next.ok, next.ok ? '' : next.message).toBe(true);
    expect(next.objects!.find((o) => o.key.startsWith('Deployment/'))?.action).toBe('configured');
    expect(kubectl('-n', namespace, 'get', 'deploy/web', '-o', 'jsonpath={.spec.template.spec.containers[0].env[0].value}')).toBe('bonjour');
    expect(replicas()).toBe('4');
    expect(kubectl('-n', namespace, 'get', 'deploy/web', '-o', 'jsonpath={.metadata.managedFields[?(@.manager=="hpa-sim")].fieldsV1}')).toContain('f:replicas');
    expect(kubectl('-n', namespace, 'get', 'deploy/web', '-o', 'jsonpath={.metadata.managedFields[?(@.manager=="keelson")].fieldsV1}')).not.toContain('f:replicas');
  });

  it('ignoreDifferences by JSON pointer: kubectl scale is left alone, the rest is still healed', async () => {
    const { t, env, namespace } = newTarget('argo-pointer');
    checkout('drift-hpa', 'drift-pointer');
    const spec = app(env, 'drift-pointer', { ignoreDifferences: [{ group: 'apps', kind: 'Deployment', jsonPointers: ['/spec/replicas'] }] });
    expect((await t.apply(spec, ctx)).ok).toBe(true);
    kubectl('-n', namespace, 'scale', 'deploy/web', '--replicas=3');
    await waitFor('watch saw the scale', async () => (await t.observe(env))[0].replicas.desired === 3, 10_000);
    // Another field is still drift: healed, and the scale stays.
    kubectl('-n', namespace, 'set', 'env', 'deploy/web', 'GREETING=changed');
    await waitFor('env healed', () => kubectl('-n', namespace, 'get', 'deploy/web', '-o', 'jsonpath={.spec.template.spec.containers[0].env[0].value}') === 'hello', 15_000);
    expect(kubectl('-n', namespace, 'get', 'deploy/web', '-o', 'jsonpath={.spec.replicas}')).toBe('3');
    const again = await t.apply(spec, ctx);
    expect(again.objects!.every((o) => o.action === 'unchanged')).toBe(true);
  });

  it('through the engine: App-level Prune=confirm keeps the app OutOfSync until keelson sync --confirm-prune (engine.sync with confirmPrune)', async () => {
    const env = uniqueNamespace('argo-engine');
    const ops = join(tmp.dir, 'ops-engine');
    const stateDir = join(tmp.dir, 'state-engine');
    const appYaml = `apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata: { name: shop }\nspec:\n  version: "1"\n  manifests: ../manifests\n  syncOptions: [Prune=confirm]\n`;
    const envYaml = `apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: ${env} }\nspec:\n  target: { kubernetes: { namespace: ${env} } }\n  apps: { shop: {} }\n`;
    writeTree(ops, { 'apps/shop.yaml': appYaml, 'envs/env.yaml': envYaml });
    cpSync(join(FIXTURES, 'prune-options/remaining.yaml'), join(ops, 'manifests/remaining.yaml'));
    writeFileSync(join(ops, 'manifests/old.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: old }\ndata: { a: "1" }\n');
    gitInit(ops);
    commitAll(ops, 'shop');
    const engineStore = new Store(stateDir);
    const log = silentLogger();
    let engine: Engine | undefined;
    const engineBus = new EventBus();
    const seen: Stamped[] = [];
    engineBus.subscribe((e) => seen.push(e));
    const target = new KubernetesTarget({ env, spec: { namespace: env }, store: engineStore, bus: engineBus, log, requeue: (e) => engine?.requeue(e) });
    engine = new Engine({ repo: ops, stateDir, log, store: engineStore, bus: engineBus, target, pollMs: 600_000 });
    const status = async () => (await engine!.status(env)).environments[0].apps.find((a) => a.name === 'shop')!;
    try {
      await engine.start();
      await waitFor('first sync', () => seen.find((e) => e.type === 'sync.completed' && e.env === env), 60_000);
      expect((await status()).sync).toBe('Synced');
      rmSync(join(ops, 'manifests/old.yaml'));
      commitAll(ops, 'drop old');
      const from = seen.length;
      await engine.refresh();
      await waitFor('sync after drop', () => seen.slice(from).find((e) => e.type === 'sync.completed' && e.env === env), 60_000);
      const waiting = await status();
      expect(waiting.sync).toBe('OutOfSync');
      expect(waiting.message).toBe(`waiting for prune confirmation: ConfigMap/${env}/old; run \`keelson sync --env ${env} --app shop --confirm-prune\` to delete it`);
      expect(kubectl('-n', env, 'get', 'configmap/old', '-o', 'name')).toBe('configmap/old');
      expect((await engine.plan(env)).steps[0]).toMatchObject({ action: 'none', reason: waiting.message });
      // A plain sync does not prune it; a confirmed one does.
      expect((await engine.sync(env, 'shop')).result).not.toBe('Failed');
      expect(kubectl('-n', env, 'get', 'configmap/old', '-o', 'name')).toBe('configmap/old');
      const confirmed = await engine.sync(env, 'shop', { confirmPrune: true });
      expect(confirmed.result).toBe('Succeeded');
      await waitFor('old pruned', () => kubectl('-n', env, 'get', 'configmaps', '-o', 'name').split('\n').every((n) => n !== 'configmap/old'), 10_000);
      await waitFor('synced', async () => (await status()).sync === 'Synced', 10_000);
    } finally {
      await engine.stop().catch(() => undefined);
      engineStore.close();
      kubectl('delete', 'namespace', env, '--wait=false', '--ignore-not-found');
    }
  });

  it('Replace=true re-creates a Job whose template changed (immutable); CreateNamespace=true creates a namespace an object names', async () => {
    const { t, env, namespace } = newTarget('argo-options');
    const dir = join(tmp.dir, 'options');
    const other = `${namespace}-x`.slice(0, 63);
    extraNamespaces.push(other);
    const job = (image: string) => `apiVersion: batch/v1
kind: Job
metadata:
  name: report
  annotations: { argocd.argoproj.io/sync-options: Replace=true }
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers: [{ name: report, image: ${image} }]
`;
    const foreign = (annotations: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: elsewhere\n  namespace: ${other}\n  annotations: {${annotations}}\ndata: { a: "1" }\n`;
    rmSync(dir, { recursive: true, force: true });
    cpSync(join(FIXTURES, 'prune-options/remaining.yaml'), join(dir, 'remaining.yaml'));
    writeFileSync(join(dir, 'job.yaml'), job('registry.example/report:1'));
    writeFileSync(join(dir, 'foreign.yaml'), foreign(''));
    const missing = await t.apply(app(env, 'options'), ctx);
    expect(missing.ok).toBe(false);
    expect(missing.ok === false && missing.message).toContain(`namespace "${other}" does not exist (ConfigMap/${other}/elsewhere is in it); create it, declare it as a Namespace object, or add the sync option CreateNamespace=true`);

    writeFileSync(join(dir, 'foreign.yaml'), foreign(' argocd.argoproj.io/sync-options: CreateNamespace=true '));
    const created = await t.apply(app(env, 'options'), ctx);
    expect(created.ok, created.ok ? '' : created.message).toBe(true);
    expect(kubectl('-n', other, 'get', 'configmap/elsewhere', '-o', 'jsonpath={.data.a}')).toBe('1');
    const uid = kubectl('-n', namespace, 'get', 'job/report', '-o', 'jsonpath={.metadata.uid}');

    writeFileSync(join(dir, 'job.yaml'), job('registry.example/report:2'));
    const replaced = await t.apply(app(env, 'options'), ctx);
    expect(replaced.ok, replaced.ok ? '' : replaced.message).toBe(true);
    expect(replaced.objects!.find((o) => o.key === `Job/${namespace}/report`)?.action).toBe('configured');
    expect(kubectl('-n', namespace, 'get', 'job/report', '-o', 'jsonpath={.spec.template.spec.containers[0].image}')).toBe('registry.example/report:2');
    expect(kubectl('-n', namespace, 'get', 'job/report', '-o', 'jsonpath={.metadata.uid}')).not.toBe(uid);
    // Written by replace (an Update), not by server-side apply.
    expect(kubectl('-n', namespace, 'get', 'job/report', '-o', 'jsonpath={.metadata.managedFields[?(@.manager=="keelson")].operation}')).not.toContain('Apply');
  });
});
