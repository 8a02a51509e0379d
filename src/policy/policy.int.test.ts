import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { DesiredApp, KubernetesTargetSpec } from '../core/model.js';
import { EventBus } from '../core/events.js';
import { silentLogger } from '../log.js';
import { Store } from '../store/store.js';
import { tempDir, writeTree } from '../../test/helpers.js';
import { kubectl, kubectlWithInput, kubernetesSuite, manifestsAppOf, uniqueNamespace } from '../../test/k8s.js';
import { KubernetesTarget } from '../targets/kubernetes/kubernetes-target.js';
import { makePolicy } from './policy.js';
import { checkTarget } from './target-check.js';

/** The engine policy's object checks and service-account impersonation against the real test control plane. */
kubernetesSuite('engine policy on Kubernetes', () => {
  const tmp = tempDir('keelson-policy-k8s-');
  const bus = new EventBus();
  let store: Store;
  const targets: KubernetesTarget[] = [];
  const namespaces: string[] = [];
  const clusterRoles: string[] = [];

  beforeAll(() => {
    store = new Store(join(tmp.dir, 'state'));
  });
  afterAll(async () => {
    for (const t of targets) await t.close();
    for (const ns of namespaces) kubectl('delete', 'namespace', ns, '--wait=false', '--ignore-not-found');
    for (const cr of clusterRoles) kubectl('delete', 'clusterrole', cr, '--ignore-not-found');
    store.close();
    tmp.cleanup();
  });

  /** A target whose spec is what render gives environment `env` under `policy` (the engine's path). */
  const targetFor = (env: string, namespace: string, policy: ReturnType<typeof makePolicy>) => {
    namespaces.push(namespace);
    const checked = checkTarget(policy, env, { kubernetes: { namespace } });
    expect(checked.violations).toEqual([]);
    const spec = (checked.target as KubernetesTargetSpec).kubernetes;
    const t = new KubernetesTarget({ env, spec, store, bus, log: silentLogger(), requeue: () => undefined });
    targets.push(t);
    return t;
  };

  const manifestsApp = (env: string, files: Record<string, string>, name = 'shop'): DesiredApp => {
    const dir = `manifests-${env}-${name}`;
    writeTree(join(tmp.dir, dir), files);
    return manifestsAppOf(name, env, dir, { version: '', source: { file: 'apps/shop.yaml', line: 3, col: 1 } });
  };
  const ctx = { revision: 'a'.repeat(40), checkoutDir: tmp.dir };
  const configMap = (name: string, namespace?: string) =>
    `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\n${namespace ? `  namespace: ${namespace}\n` : ''}data: { a: "1" }\n`;

  it('refuses a cluster-scoped ClusterRole the rule does not allow: nothing of the app is applied', async () => {
    const namespace = uniqueNamespace('pol-kind');
    const role = `${namespace}-reader`;
    clusterRoles.push(role);
    const policy = makePolicy([{ environments: ['pol-kind-*'] }], undefined);
    const t = targetFor(namespace, namespace, policy);
    const app = manifestsApp(namespace, {
      'cm.yaml': configMap('settings'),
      'role.yaml': `apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: ${role}\nrules: []\n`,
    });
    const out = await t.apply(app, ctx);
    expect(out.ok).toBe(false);
    expect(out.message).toBe(
      `shop: ClusterRole/${role} of app shop (apps/shop.yaml:3:1): refused by policy rule #1 (environments: pol-kind-*): kind ClusterRole (rbac.authorization.k8s.io) is cluster-scoped and not allowed (cluster-scoped kinds must be named in kinds.allow); nothing of app shop was applied`,
    );
    expect(kubectl('get', 'clusterrole', role, '--ignore-not-found', '-o', 'name')).toBe('');
    expect(kubectl('get', 'namespace', namespace, '--ignore-not-found', '-o', 'name')).toBe('');

    // Named in kinds.allow, the same app applies.
    const allowed = targetFor(`${namespace}-ok`, `${namespace}-ok`, makePolicy([{ environments: ['*'], kinds: { allow: ['rbac.authorization.k8s.io/ClusterRole', '*'] } }], undefined));
    const ok = await allowed.apply({ ...app, env: `${namespace}-ok` }, ctx);
    expect(ok.ok, ok.message).toBe(true);
    expect(kubectl('get', 'clusterrole', role, '-o', 'name')).toBe(`clusterrole.rbac.authorization.k8s.io/${role}`);
  });

  it('takes a kind\'s scope from the server: a CRD in the app cannot make a cluster-scoped kind look namespaced', async () => {
    const namespace = uniqueNamespace('pol-crd');
    const policy = makePolicy([{ environments: ['*'], kinds: { allow: ['CustomResourceDefinition', '*'] } }], undefined);
    const t = targetFor(namespace, namespace, policy);
    const crd = [
      'apiVersion: apiextensions.k8s.io/v1',
      'kind: CustomResourceDefinition',
      'metadata: { name: validatingwebhookconfigurations.admissionregistration.k8s.io }',
      'spec:',
      '  group: admissionregistration.k8s.io',
      '  scope: Namespaced',
      '  names: { kind: ValidatingWebhookConfiguration, plural: validatingwebhookconfigurations }',
      '  versions: [{ name: v1, served: true, storage: true, schema: { openAPIV3Schema: { type: object } } }]',
      '',
    ].join('\n');
    const hook = `apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata:\n  name: ${namespace}\nwebhooks: []\n`;
    const out = await t.apply(manifestsApp(namespace, { 'crd.yaml': crd, 'hook.yaml': hook }), ctx);
    expect(out.ok).toBe(false);
    expect(out.message).toContain(`ValidatingWebhookConfiguration/${namespace}/${namespace} of app shop (apps/shop.yaml:3:1): refused by policy rule #1 (environments: *): kind ValidatingWebhookConfiguration (admissionregistration.k8s.io) is cluster-scoped and not allowed`);
    expect(kubectl('get', 'validatingwebhookconfiguration', namespace, '--ignore-not-found', '-o', 'name')).toBe('');
  });

  it('refuses an object in a namespace outside the allowed set', async () => {
    const namespace = uniqueNamespace('pol-ns');
    const policy = makePolicy([{ environments: ['*'], namespaces: ['pol-ns-*'] }], undefined);
    const t = targetFor(namespace, namespace, policy);
    const out = await t.apply(manifestsApp(namespace, { 'a.yaml': configMap('mine'), 'b.yaml': configMap('theirs', 'kube-system') }), ctx);
    expect(out.ok).toBe(false);
    expect(out.message).toBe(
      'shop: ConfigMap/kube-system/theirs of app shop (apps/shop.yaml:3:1): refused by policy rule #1 (environments: *): namespace "kube-system" is not allowed (namespaces: pol-ns-*); nothing of app shop was applied',
    );
    expect(kubectl('-n', 'kube-system', 'get', 'configmap', 'theirs', '--ignore-not-found', '-o', 'name')).toBe('');
    expect(kubectl('get', 'namespace', namespace, '--ignore-not-found', '-o', 'name')).toBe('');
  });

  it('applies as the service account: what its RBAC allows succeeds, the rest fails with the API server\'s 403', async () => {
    const namespace = uniqueNamespace('pol-sa');
    namespaces.push(namespace);
    kubectl('create', 'namespace', namespace);
    kubectl('-n', namespace, 'create', 'serviceaccount', 'deployer');
    kubectlWithInput(
      [
        'apiVersion: rbac.authorization.k8s.io/v1',
        'kind: Role',
        `metadata: { name: configmaps, namespace: ${namespace} }`,
        'rules: [{ apiGroups: [""], resources: [configmaps], verbs: [get, list, watch, create, update, patch, delete] }]',
        '---',
        'apiVersion: rbac.authorization.k8s.io/v1',
        'kind: RoleBinding',
        `metadata: { name: deployer, namespace: ${namespace} }`,
        'roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: configmaps }',
        `subjects: [{ kind: ServiceAccount, name: deployer, namespace: ${namespace} }]`,
      ].join('\n'),
      'apply',
      '-f',
      '-',
    );
    const policy = makePolicy([{ environments: ['*'], serviceAccount: { name: 'deployer', namespace } }], undefined);
    const t = targetFor(namespace, namespace, policy);

    const ok = await t.apply(manifestsApp(namespace, { 'cm.yaml': configMap('settings') }), ctx);
    expect(ok.ok, ok.message).toBe(true);
    expect(kubectl('-n', namespace, 'get', 'configmap', 'settings', '-o', 'jsonpath={.data.a}')).toBe('1');

    const secret = `apiVersion: v1\nkind: Secret\nmetadata:\n  name: token\nstringData: { a: "1" }\n`;
    const refused = await t.apply(manifestsApp(namespace, { 'cm.yaml': configMap('vault-settings'), 'secret.yaml': secret }, 'vault'), ctx);
    expect(refused.ok).toBe(false);
    expect(refused.message).toContain(`secrets "token" is forbidden: User "system:serviceaccount:${namespace}:deployer" cannot`);
    expect(kubectl('-n', namespace, 'get', 'secret', 'token', '--ignore-not-found', '-o', 'name')).toBe('');
  });
});
