import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import { formatIssue } from '../core/types.js';
import { renderRepository } from '../render/render.js';
import { policyFromConfig } from './config.js';
import { objectViolation } from './objects.js';
import { describePolicy, globMatch, makePolicy, policyFor, unrestrictedPolicy } from './policy.js';
import { checkTarget } from './target-check.js';
import { helmTemplateArgs } from '../targets/kubernetes/helm.js';

const tenants = makePolicy(
  [
    { environments: ['prod-*'], targets: ['kubernetes'], clusters: ['prod'], namespaces: ['shop-*'], kinds: { deny: ['Secret'] }, serviceAccount: { name: 'deployer', namespace: 'shop' } },
    { environments: ['prod-eu', 'dev'], targets: ['local'], runAs: 'app' },
  ],
  { targets: ['local'], runAs: 'nobody' },
  { prod: { kubeconfig: '/etc/keelson/prod.kubeconfig', context: 'prod' }, staging: { kubeconfig: '/etc/keelson/staging.kubeconfig' } },
);

describe('matching', () => {
  test('globs: * any run, ? one character, the rest literal', () => {
    expect(globMatch('prod-*', 'prod-eu')).toBe(true);
    expect(globMatch('prod-*', 'prod')).toBe(false);
    expect(globMatch('prod-?', 'prod-1')).toBe(true);
    expect(globMatch('prod-?', 'prod-12')).toBe(false);
    expect(globMatch('a.b', 'axb')).toBe(false);
    expect(globMatch('*', 'anything')).toBe(true);
  });

  test('first match wins, then the default rule', () => {
    expect(policyFor(tenants, 'prod-eu').label).toBe('policy rule #1 (environments: prod-*)');
    expect(policyFor(tenants, 'dev').label).toBe('policy rule #2 (environments: prod-eu, dev)');
    expect(policyFor(tenants, 'dev').runAs).toBe('app');
    expect(policyFor(tenants, 'qa').label).toBe('the default policy rule');
    expect(policyFor(tenants, 'qa').runAs).toBe('nobody');
    expect(policyFor(tenants, 'prod-eu').runAs).toBeUndefined();
  });

  test('a policy without a default rule refuses environments no rule matches', () => {
    const p = makePolicy([{ environments: ['dev'] }], undefined);
    expect(checkTarget(p, 'qa', { local: {} }).violations[0].message).toBe(
      'refused by the default policy rule (none configured: refuses every target): environment "qa" may not use the local target (no target is allowed)',
    );
    expect(checkTarget(p, 'dev', { local: {} }).violations).toEqual([]);
  });

  test('no policy configured: everything allowed today stays allowed, and start-up says so', () => {
    const p = unrestrictedPolicy();
    expect(checkTarget(p, 'x', { local: {} }).violations).toEqual([]);
    const k = checkTarget(p, 'x', { kubernetes: { namespace: 'kube-system', kubeconfig: '/home/me/.kube/config', context: 'c' } });
    expect(k.violations).toEqual([]);
    expect(k.target).toEqual({ kubernetes: { namespace: 'kube-system', kubeconfig: '/home/me/.kube/config', context: 'c' } });
    expect(describePolicy(p)).toEqual([expect.stringMatching(/^no policy configured: every environment may use every target, any kubeconfig path .* see docs\/security\.md$/)]);
  });

  test('a configured policy prints one line per rule', () => {
    const lines = describePolicy(tenants);
    expect(lines).toHaveLength(3);
    expect(lines[0]).toBe(
      'policy rule #1 (environments: prod-*): targets kubernetes; clusters prod; no kubeconfig paths; namespaces shop-*; kinds denied Secret; cluster-scoped kinds only as allowed; as service account shop/deployer',
    );
    expect(lines[2]).toBe('the default policy rule: targets local; local apps run as nobody');
  });
});

describe('environment checks', () => {
  test('a named cluster resolves to the engine configuration, with the impersonated identity and object limits', () => {
    const { target, violations } = checkTarget(tenants, 'prod-eu', { kubernetes: { namespace: 'shop-eu', cluster: 'prod' } });
    expect(violations).toEqual([]);
    expect(target).toEqual({
      kubernetes: {
        namespace: 'shop-eu',
        cluster: 'prod',
        kubeconfig: '/etc/keelson/prod.kubeconfig',
        context: 'prod',
        impersonate: 'system:serviceaccount:shop:deployer',
        policy: { rule: 'policy rule #1 (environments: prod-*)', namespaces: ['shop-*'], kinds: { deny: ['Secret'] }, allowClusterScoped: false },
      },
    });
  });

  test('target, cluster, kubeconfig path and namespace violations name the field and the rule', () => {
    const v = (env: string, t: Parameters<typeof checkTarget>[2]) => checkTarget(tenants, env, t).violations.map((x) => `${x.path.join('.')}: ${x.message}`);
    expect(v('prod-eu', { local: {} })).toEqual(['spec.target.local: refused by policy rule #1 (environments: prod-*): environment "prod-eu" may not use the local target (allowed: kubernetes)']);
    expect(v('prod-eu', { kubernetes: { namespace: 'shop', cluster: 'staging' } })).toEqual([
      'spec.target.kubernetes.cluster: refused by policy rule #1 (environments: prod-*): environment "prod-eu" may not use cluster "staging" (allowed: prod)',
      'spec.target.kubernetes.namespace: refused by policy rule #1 (environments: prod-*): environment "prod-eu" may not use namespace "shop" (allowed: shop-*)',
    ]);
    expect(v('prod-eu', { kubernetes: { namespace: 'shop-a', kubeconfig: '/root/.kube/config' } })).toEqual([
      'spec.target.kubernetes.kubeconfig: refused by policy rule #1 (environments: prod-*): environment "prod-eu" may not name a kubeconfig file on the engine\'s host; refer to a cluster of the engine\'s configuration instead (target.kubernetes.cluster: prod, staging)',
    ]);
    expect(v('prod-eu', { kubernetes: { namespace: 'shop-a', cluster: 'nope' } })[0]).toBe('spec.target.kubernetes.cluster: no cluster named "nope" in the engine\'s configuration (clusters: prod, staging)');
    expect(v('qa', { kubernetes: { namespace: 'x', cluster: 'prod' } })).toEqual([
      'spec.target.kubernetes: refused by the default policy rule: environment "qa" may not use the kubernetes target (allowed: local)',
    ]);
  });

  test('kubeconfig paths only where a rule allows them', () => {
    const p = makePolicy([{ environments: ['*'], allowKubeconfigPaths: true }], undefined);
    expect(checkTarget(p, 'a', { kubernetes: { namespace: 'x', kubeconfig: '/k' } }).violations).toEqual([]);
  });
});

describe('object checks', () => {
  const policy = checkTarget(tenants, 'prod-eu', { kubernetes: { namespace: 'shop-eu', cluster: 'prod' } }).target;
  const op = 'kubernetes' in policy ? policy.kubernetes.policy! : undefined!;
  const obj = (apiVersion: string, kind: string, namespace?: string, name = 'x') => ({ apiVersion, kind, metadata: { name, ...(namespace ? { namespace } : {}) } });

  test('cluster-scoped kinds are denied unless named in kinds.allow; globs never allow them', () => {
    expect(objectViolation(op, obj('rbac.authorization.k8s.io/v1', 'ClusterRole'), false)).toBe(
      'refused by policy rule #1 (environments: prod-*): kind ClusterRole (rbac.authorization.k8s.io) is cluster-scoped and not allowed (cluster-scoped kinds must be named in kinds.allow)',
    );
    const allowGlob = { ...op, kinds: { allow: ['*'] } };
    expect(objectViolation(allowGlob, obj('rbac.authorization.k8s.io/v1', 'ClusterRole'), false)).toMatch(/cluster-scoped and not allowed/);
    const allowNamed = { ...op, kinds: { allow: ['rbac.authorization.k8s.io/ClusterRole', 'apps/*', 'core/*'] } };
    expect(objectViolation(allowNamed, obj('rbac.authorization.k8s.io/v1', 'ClusterRole'), false)).toBeUndefined();
    expect(objectViolation(allowNamed, obj('apps/v1', 'Deployment', 'shop-eu'), true)).toBeUndefined();
    expect(objectViolation(allowNamed, obj('v1', 'ConfigMap', 'shop-eu'), true)).toBeUndefined();
    expect(objectViolation(allowNamed, obj('batch/v1', 'Job', 'shop-eu'), true)).toBe(
      'refused by policy rule #1 (environments: prod-*): kind Job (batch) is not allowed (kinds.allow: rbac.authorization.k8s.io/ClusterRole, apps/*, core/*)',
    );
  });

  test('deny wins; namespaces outside the allowed set are refused, Namespace objects too', () => {
    expect(objectViolation(op, obj('v1', 'Secret', 'shop-eu'), true)).toBe('refused by policy rule #1 (environments: prod-*): kind Secret is denied (kinds.deny: Secret)');
    expect(objectViolation(op, obj('v1', 'ConfigMap', 'kube-system'), true)).toBe(
      'refused by policy rule #1 (environments: prod-*): namespace "kube-system" is not allowed (namespaces: shop-*)',
    );
    expect(objectViolation(op, obj('v1', 'ConfigMap', 'shop-us'), true)).toBeUndefined();
    const ns = { ...op, kinds: { allow: ['Namespace'] } };
    expect(objectViolation(ns, obj('v1', 'Namespace', undefined, 'kube-public'), false)).toMatch(/namespace "kube-public" is not allowed/);
    expect(objectViolation(ns, obj('v1', 'Namespace', undefined, 'shop-new'), false)).toBeUndefined();
  });
});

describe('Helm lookup', () => {
  test('impersonates the environment\'s service account too', () => {
    const helm = { releaseName: 'web', values: {}, valuesFiles: [] } as unknown as Parameters<typeof helmTemplateArgs>[1];
    const args = helmTemplateArgs('/chart', helm, { namespace: 'shop', valuesFiles: [], install: true, lookup: { kubeconfig: '/k', context: 'c', asUser: 'system:serviceaccount:shop:deployer' } });
    expect(args.slice(args.indexOf('--kube-context'))).toEqual(['--kube-context', 'c', '--kube-as-user', 'system:serviceaccount:shop:deployer']);
    expect(helmTemplateArgs('/chart', helm, { namespace: 'shop', valuesFiles: [], install: true, lookup: {} })).not.toContain('--kube-as-user');
  });
});

describe('engine configuration', () => {
  test('clusters: and policy: are read and checked', () => {
    const p = policyFromConfig(
      { clusters: { prod: { kubeconfig: '/k', context: 'c' } }, policy: { rules: [{ environments: ['prod-*'], clusters: ['prod'], targets: ['kubernetes'] }], default: { targets: ['local'] } } },
      'keelson.yaml',
    );
    expect(p.configured).toBe(true);
    expect(policyFor(p, 'prod-1').clusters).toEqual(['prod']);
    expect(policyFromConfig({}, 'keelson.yaml').configured).toBe(false);
    expect(() => policyFromConfig({ policy: { rules: [{ environments: ['a'], targets: ['ssh'] }] } }, 'keelson.yaml')).toThrow(/^keelson\.yaml: policy\.rules\.0\.targets\.0: /);
    expect(() => policyFromConfig({ policy: { rules: [{ environments: ['a'], clusters: ['prod'] }] } }, 'keelson.yaml')).toThrow('keelson.yaml: policy.rules.0.clusters: no cluster named "prod" under clusters: (none)');
    expect(() => policyFromConfig({ policy: { rules: [{ environments: ['a'], namespace: ['x'] }] } }, 'keelson.yaml')).toThrow(/policy\.rules\.0/);
  });
});

async function writeRepo(files: Record<string, string>): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'keelson-policy-'));
  onTestFinished(() => rm(root, { recursive: true, force: true }));
  for (const [file, text] of Object.entries(files)) {
    await mkdir(dirname(join(root, file)), { recursive: true });
    await writeFile(join(root, file), text);
  }
  return root;
}

describe('render with a policy', () => {
  const files = {
    'apps/web.yaml': 'apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata: { name: web }\nspec:\n  version: "1.0"\n  image: ghcr.io/acme/web\n  port: 8080\n',
    'envs/prod-eu.yaml': [
      'apiVersion: keelson.dev/v1alpha1',
      'kind: Environment',
      'metadata: { name: prod-eu }',
      'spec:',
      '  target:',
      '    kubernetes:',
      '      namespace: kube-system',
      '      kubeconfig: /root/.kube/config',
      '  apps: { web: }',
      '',
    ].join('\n'),
    'envs/qa.yaml': 'apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: qa }\nspec:\n  target:\n    kubernetes: { namespace: qa, cluster: staging }\n  apps: { web: }\n',
    'envs/prod-us.yaml': 'apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: prod-us }\nspec:\n  target:\n    kubernetes:\n      namespace: shop-us\n      cluster: staging\n  apps: { web: }\n',
  };

  test('violations are render errors at file:line:col naming the rule', async () => {
    const root = await writeRepo(files);
    const { issues } = await renderRepository({ root, policy: tenants });
    expect(issues.map(formatIssue)).toEqual([
      'envs/prod-eu.yaml:7:18: refused by policy rule #1 (environments: prod-*): environment "prod-eu" may not use namespace "kube-system" (allowed: shop-*)',
      'envs/prod-eu.yaml:8:19: refused by policy rule #1 (environments: prod-*): environment "prod-eu" may not name a kubeconfig file on the engine\'s host; refer to a cluster of the engine\'s configuration instead (target.kubernetes.cluster: prod, staging)',
      'envs/prod-us.yaml:8:16: refused by policy rule #1 (environments: prod-*): environment "prod-us" may not use cluster "staging" (allowed: prod)',
      'envs/qa.yaml:6:5: refused by the default policy rule: environment "qa" may not use the kubernetes target (allowed: local)',
    ]);
  });

  test('without a policy (offline validate) the same repository renders, and `cluster` stays a name', async () => {
    const root = await writeRepo(files);
    const { issues, desired } = await renderRepository({ root });
    expect(issues).toEqual([]);
    expect(desired.environments.find((e) => e.name === 'qa')!.target).toEqual({ kubernetes: { namespace: 'qa', cluster: 'staging' } });
  });

  test('an allowed environment gets its cluster from the engine configuration', async () => {
    const root = await writeRepo({ ...files, 'envs/prod-us.yaml': files['envs/prod-us.yaml'].replace('cluster: staging', 'cluster: prod') });
    const { desired, issues } = await renderRepository({ root, policy: tenants, envs: ['prod-us'] });
    expect(issues).toEqual([]);
    expect(desired.environments[0].target).toMatchObject({ kubernetes: { namespace: 'shop-us', cluster: 'prod', kubeconfig: '/etc/keelson/prod.kubeconfig', context: 'prod', impersonate: 'system:serviceaccount:shop:deployer' } });
  });

  test('cluster cannot be combined with kubeconfig or context', async () => {
    const root = await writeRepo({
      'apps/web.yaml': files['apps/web.yaml'],
      'envs/qa.yaml': 'apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: qa }\nspec:\n  target:\n    kubernetes: { namespace: qa, cluster: staging, context: x }\n  apps: { web: }\n',
    });
    const { issues } = await renderRepository({ root });
    expect(issues.map(formatIssue)).toEqual([expect.stringMatching(/^envs\/qa\.yaml:6:\d+: .*"context" cannot be combined with "cluster"/)]);
  });
});

describe('runAs: the user local apps of an environment run as', () => {
  const local = (env: string, user = '') => ({
    'apps/web.yaml': `apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata: { name: web }\nspec:\n  version: "1.0"\n  artifact: { path: . }\n  run: { command: [node, server.js] }\n${user}`,
    [`envs/${env}.yaml`]: `apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: ${env} }\nspec:\n  apps: { web: }\n`,
  });

  test("an app without user: runs as the rule's runAs; the same user in the App is accepted", async () => {
    const root = await writeRepo(local('dev'));
    const r = await renderRepository({ root, policy: tenants, hostChecks: false });
    expect(r.issues).toEqual([]);
    expect(r.desired.environments[0].apps[0].user).toEqual({ name: 'app' });
    const same = await renderRepository({ root: await writeRepo(local('qa', '  user: nobody\n')), policy: tenants, hostChecks: false });
    expect(same.issues).toEqual([]);
    expect(same.desired.environments[0].apps[0].user).toEqual({ name: 'nobody' });
  });

  test('another user in the ops repository is a render error at its line naming the rule', async () => {
    const root = await writeRepo(local('dev', '  user: root\n'));
    const { issues } = await renderRepository({ root, policy: tenants, hostChecks: false });
    expect(issues.map(formatIssue)).toEqual([expect.stringMatching(/^apps\/web\.yaml:8:\d+: App "web" runs as "root", but policy rule #2 \(environments: prod-eu, dev\) of the engine's policy runs the apps of environment "dev" as "app"/)]);
  });
});
