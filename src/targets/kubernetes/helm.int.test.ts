import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import type { DesiredApp } from '../../core/model.js';
import { renderRepository } from '../../render/render.js';
import { root, waitFor, writeTree } from '../../../test/helpers.js';
import { kubectl, kubernetesSuite, suiteTargets } from '../../../test/k8s.js';
import { helmUnavailable } from './helm.js';

/**
 * Helm charts on the real test control plane with the real Helm: an ops repository with a chart directory, values,
 * values files and per-environment overrides, rendered by Keelson's render and applied by the Kubernetes target.
 */
kubernetesSuite('helm charts on kubernetes', () => {
  const suite = suiteTargets('helm-k8s');
  const { tmp } = suite;
  const repo = join(tmp.dir, 'ops');
  const newTarget = (prefix: string) => suite.newTarget(prefix);

  beforeAll(() => {
    const why = helmUnavailable();
    if (why) throw new Error(why);
    cpSync(join(root, 'test', 'fixtures', 'helm'), join(repo, 'charts'), { recursive: true });
  });

  /** The ops repository as given, rendered: the desired app `name` of environment `env`. */
  const desired = async (files: Record<string, string>, env: string, name: string): Promise<DesiredApp> => {
    writeTree(repo, files);
    const r = await renderRepository({ root: repo, envs: [env] });
    expect(r.issues).toEqual([]);
    return r.desired.environments[0].apps.find((a) => a.name === name)!;
  };

  const appDoc = (name: string, chart: string, helm = '') => `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: ${name} }
spec:
  version: "1.0.0"
  manifests: ../charts/${chart}
  rollout: { progressDeadlineSeconds: 20 }
${helm}`;

  const envDoc = (env: string, namespace: string, apps: string) => `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata: { name: ${env} }
spec:
  target: { kubernetes: { namespace: ${namespace} } }
  apps:
${apps}`;

  const ctx = (rev: string) => ({ revision: rev.repeat(40).slice(0, 40), checkoutDir: repo });
  const container = (namespace: string, name: string) => JSON.parse(kubectl('-n', namespace, 'get', 'deploy', name, '-o', 'json')).spec.template.spec.containers[0];
  const envValue = (c: { env: { name: string; value: string }[] }, name: string) => c.env.find((e) => e.name === name)?.value;
  const jobs = (namespace: string) => kubectl('-n', namespace, 'get', 'jobs', '-o', 'jsonpath={.items[*].metadata.name}').split(' ').filter(Boolean).sort();

  it('deploys a chart with values, values files and per-environment overrides; hooks by weight, pre-install on the first deploy, pre-upgrade after; capabilities and lookup from the live cluster; an upgrade reconfigures the Deployment', async () => {
    const { t, env, namespace } = newTarget('k-helm');
    // A live ConfigMap the chart reads with `lookup`.
    kubectl('create', 'namespace', namespace);
    kubectl('-n', namespace, 'create', 'configmap', 'palette', '--from-literal=color=teal');
    const files = (greeting: string) => ({
      'apps/web.yaml': appDoc('web', 'web', '  helm:\n    releaseName: shop\n    values: { greeting: from-app, image: registry.example/web:1.0.0 }\n    valuesFiles: [values-big.yaml]\n'),
      'values/staging.yaml': 'replicas: 3\n',
      'envs/env.yaml': envDoc(env, namespace, `    web:\n      helm:\n        values: { greeting: ${greeting} }\n        valuesFiles: [../../values/staging.yaml]\n`),
    });
    const first = await t.apply(await desired(files('hello-staging'), env, 'web'), ctx('a'));
    expect(first.ok, first.ok ? '' : first.message).toBe(true);
    const keys = first.objects!.map((o) => o.key);
    // PreSync hooks in weight order (-10, then -5), the release, then the post-install hook.
    expect(keys.slice(0, 2)).toEqual([`ConfigMap/${namespace}/shop-schema`, `Job/${namespace}/shop-pre-install`]);
    expect(keys.at(-1)).toBe(`Job/${namespace}/shop-post-install`);
    expect(keys.filter((k) => /upgrade|test|delete/.test(k))).toEqual([]);
    let c = container(namespace, 'shop');
    expect(envValue(c, 'GREETING')).toBe('hello-staging'); // the environment's values over the App's
    expect(envValue(c, 'INSTALLED_BY')).toBe('install');
    expect(kubectl('-n', namespace, 'get', 'deploy', 'shop', '-o', 'jsonpath={.spec.replicas}')).toBe('3'); // staging.yaml after values-big.yaml
    const info = JSON.parse(kubectl('-n', namespace, 'get', 'configmap', 'shop-info', '-o', 'json')).data;
    expect(info.color).toBe('teal'); // lookup saw the live ConfigMap
    expect(info.kubeVersion).toBe(JSON.parse(kubectl('version', '-o', 'json')).serverVersion.gitVersion.replace(/\+.*$/, ''));
    // hook-succeeded: the schema hook is gone; before-hook-creation: the Jobs stay until the next run; tests never ran.
    await waitFor('schema hook deleted', () => !kubectl('-n', namespace, 'get', 'configmaps', '-o', 'name').includes('shop-schema'), 20_000);
    expect(jobs(namespace)).toEqual(['shop-post-install', 'shop-pre-install']);

    const second = await t.apply(await desired(files('changed'), env, 'web'), ctx('b'));
    expect(second.ok, second.ok ? '' : second.message).toBe(true);
    const keys2 = second.objects!.map((o) => o.key);
    expect(keys2[0]).toBe(`Job/${namespace}/shop-pre-upgrade`);
    expect(keys2.at(-1)).toBe(`Job/${namespace}/shop-post-upgrade`);
    expect(keys2.filter((k) => /install|schema/.test(k))).toEqual([]);
    c = container(namespace, 'shop');
    expect(envValue(c, 'GREETING')).toBe('changed');
    expect(envValue(c, 'INSTALLED_BY')).toBe('upgrade');
    expect(jobs(namespace)).toEqual(['shop-post-install', 'shop-post-upgrade', 'shop-pre-install', 'shop-pre-upgrade']);

    // `keelson test`: the chart's test hook runs against the release and passes; failing, it says so.
    const app = await desired(files('changed'), env, 'web');
    const passed = await t.helmTests(app, ctx('b'));
    expect(passed).toMatchObject({ ok: true, tests: [{ key: `Job/${namespace}/shop-test-connection`, result: 'passed' }] });
    const failing = { ...app, helm: { ...app.helm!, values: { ...app.helm!.values, hooks: { enabled: true, failTest: true } } } };
    const failed = await t.helmTests(failing, ctx('b'));
    expect(failed).toMatchObject({ ok: false, tests: [{ result: 'failed', message: 'failed' }] });
    expect(failed.message).toBe(`helm test: Job/${namespace}/shop-test-connection failed`);

    // Removed from the environment: the pre-delete hook runs, then the release's objects are pruned.
    await t.delete(env, 'web');
    expect(jobs(namespace)).toContain('shop-pre-delete');
    await waitFor('release pruned', () => kubectl('-n', namespace, 'get', 'deploy', '-o', 'name') === '', 20_000);
  });

  it('a template error fails the apply with the template file and line, and leaves live as it was', async () => {
    const { t, env, namespace } = newTarget('k-helm-err');
    const files = (values: string) => ({
      'apps/cfg.yaml': appDoc('cfg', 'broken', `  helm:\n    values: ${values}\n`),
      'envs/env.yaml': envDoc(env, namespace, '    cfg: {}\n'),
    });
    const ok = await t.apply(await desired(files('{ setting: one }'), env, 'cfg'), ctx('a'));
    expect(ok.ok, ok.ok ? '' : ok.message).toBe(true);
    const bad = await t.apply(await desired(files('{ other: two }'), env, 'cfg'), ctx('b'));
    expect(bad).toMatchObject({ ok: false, rolledBack: false });
    expect(bad.ok === false && bad.message).toBe('cfg: helm template failed: execution error at (broken/templates/configmap.yaml:6:15): values.setting is required');
    expect(kubectl('-n', namespace, 'get', 'configmap', 'cfg-config', '-o', 'jsonpath={.data.required}')).toBe('one');
  });

  it('a chart with a sub-chart and a library chart in charts/', async () => {
    const { t, env, namespace } = newTarget('k-helm-sub');
    const r = await t.apply(await desired({ 'apps/umbrella.yaml': appDoc('umbrella', 'umbrella'), 'envs/env.yaml': envDoc(env, namespace, '    umbrella: {}\n') }, env, 'umbrella'), ctx('a'));
    expect(r.ok, r.ok ? '' : r.message).toBe(true);
    expect(kubectl('-n', namespace, 'get', 'configmap', 'umbrella-worker', '-o', 'jsonpath={.data.queue}')).toBe('default');
    expect(kubectl('-n', namespace, 'get', 'configmap', 'umbrella-settings', '-o', 'jsonpath={.metadata.labels.rendered-by}')).toBe('common-library');
  });

  it('tests: afterSync runs the chart tests after the sync; a failing one fails it and rolls back', async () => {
    const { t, env, namespace } = newTarget('k-helm-tests');
    const files = (greeting: string, failTest: boolean) => ({
      'apps/web.yaml': appDoc('web', 'web', `  helm:\n    tests: afterSync\n    values: { greeting: ${greeting}, hooks: { enabled: false, failTest: ${failTest} } }\n`),
      'envs/env.yaml': envDoc(env, namespace, '    web: {}\n'),
    });
    const first = await t.apply(await desired(files('one', false), env, 'web'), ctx('a'));
    expect(first.ok, first.ok ? '' : first.message).toBe(true);
    expect(first.objects!.at(-1)).toEqual({ key: `Job/${namespace}/web-test-connection`, action: 'created', message: 'helm test succeeded' });
    const second = await t.apply(await desired(files('two', true), env, 'web'), ctx('b'));
    expect(second).toMatchObject({ ok: false, rolledBack: true });
    expect(second.ok === false && second.message).toMatch(new RegExp(`^helm test: Job/${namespace}/web-test-connection failed; rolled back to 1.0.0`));
    expect(envValue(container(namespace, 'web'), 'GREETING')).toBe('one');
  });
});
