import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { DesiredApp } from '../../core/model.js';
import { renderRepository } from '../../render/render.js';
import { writeTree } from '../../../test/helpers.js';
import { isolatedHelm, serveChartRepo, startRegistry, writeChart, type IsolatedHelm, type Registry, type ServedRepo } from '../../../test/chart-repos.js';
import { deploymentYaml, kubectl, kubernetesSuite, suiteTargets } from '../../../test/k8s.js';
import { ANNOTATION_HELM_CHART, ANNOTATION_HELM_CHART_DIGEST } from './render.js';

/**
 * Remote charts end to end: an App that names a chart by version in a real HTTP chart repository or a real OCI
 * registry is fetched into the target's chart cache, rendered by the real Helm and applied to the real control plane;
 * its live objects name the chart and the package digest. An unreachable repository is retried (transient), a wrong
 * digest pin is refused, and nothing live changes.
 */
kubernetesSuite('remote helm charts on kubernetes', () => {
  const suite = suiteTargets('helm-remote', { chartCache: true });
  const { tmp } = suite;
  const repo = join(tmp.dir, 'ops');
  let helm: IsolatedHelm;
  let served: ServedRepo;
  let registry: Registry;
  let ociDigest: string;

  beforeAll(async () => {
    helm = await isolatedHelm();
    const charts = join(tmp.dir, 'src');
    const repoDir = join(tmp.dir, 'repo');
    mkdirSync(repoDir, { recursive: true });
    for (const version of ['1.0.0', '1.1.0']) {
      const dir = await writeChart(join(charts, version), {
        name: 'web',
        version,
        values: 'replicas: 1\n',
        templates: { 'deployment.yaml': deploymentYaml('{{ .Release.Name }}', { image: `registry.example/web:${version}` }).replace('spec:\n', 'spec:\n  replicas: {{ .Values.replicas }}\n') },
      });
      const tgz = await helm.package(dir, repoDir);
      if (version === '1.1.0') {
        registry = await startRegistry();
        ociDigest = await helm.push(tgz, `${registry.oci}/charts`);
      }
    }
    served = await serveChartRepo(repoDir, helm);
  });
  afterAll(async () => {
    await served?.close();
    await registry?.stop();
    await helm?.cleanup();
  });

  const newTarget = () => suite.newTarget('k-helm-remote');

  const desired = async (env: string, namespace: string, chart: string, values = ''): Promise<DesiredApp> => {
    writeTree(repo, {
      'apps/web.yaml': `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: web }
spec:
  version: "1.0.0"
  rollout: { progressDeadlineSeconds: 20 }
  helm:
    chart: ${chart}
${values}`,
      'envs/env.yaml': `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata: { name: ${env} }
spec:
  target: { kubernetes: { namespace: ${namespace} } }
  apps: { web: }
`,
    });
    const r = await renderRepository({ root: repo, envs: [env] });
    expect(r.issues).toEqual([]);
    return r.desired.environments[0].apps[0];
  };
  const ctx = (rev: string) => ({ revision: rev.repeat(40).slice(0, 40), checkoutDir: repo });
  const annotations = (namespace: string) => JSON.parse(kubectl('-n', namespace, 'get', 'deploy', 'web', '-o', 'json')).metadata.annotations as Record<string, string>;

  it('deploys a chart by version from an HTTP chart repository, then upgrades it from an OCI registry; live objects name the chart and its digest', async () => {
    const { t, env, namespace } = newTarget();
    const first = await t.apply(await desired(env, namespace, `{ repo: "${served.url}", name: web, version: 1.0.0 }`, '    values: { replicas: 2 }\n'), ctx('a'));
    expect(first.ok, first.ok ? '' : first.message).toBe(true);
    expect(kubectl('-n', namespace, 'get', 'deploy', 'web', '-o', 'jsonpath={.spec.template.spec.containers[0].image} {.spec.replicas}')).toBe('registry.example/web:1.0.0 2');
    expect(annotations(namespace)[ANNOTATION_HELM_CHART]).toBe('web@1.0.0');
    expect(annotations(namespace)[ANNOTATION_HELM_CHART_DIGEST]).toMatch(/^sha256:[0-9a-f]{64}$/);

    const next = await t.apply(await desired(env, namespace, `{ repo: "${registry.oci}/charts/web", version: 1.1.0, digest: "${ociDigest}" }`), ctx('b'));
    expect(next.ok, next.ok ? '' : next.message).toBe(true);
    expect(kubectl('-n', namespace, 'get', 'deploy', 'web', '-o', 'jsonpath={.spec.template.spec.containers[0].image}')).toBe('registry.example/web:1.1.0');
    expect(annotations(namespace)[ANNOTATION_HELM_CHART]).toBe('web@1.1.0');
    expect(annotations(namespace)[ANNOTATION_HELM_CHART_DIGEST]).toBe(ociDigest);
  });

  it('a repository that does not answer is retried (transient) and a wrong digest is refused; what runs stays', async () => {
    const { t, env, namespace } = newTarget();
    const first = await t.apply(await desired(env, namespace, `{ repo: "${served.url}", name: web, version: 1.0.0 }`), ctx('a'));
    expect(first.ok, first.ok ? '' : first.message).toBe(true);

    const down = await t.apply(await desired(env, namespace, `{ repo: "http://127.0.0.1:9", name: web, version: 1.1.0 }`), ctx('b'));
    if (down.ok) throw new Error('an unreachable chart repository must fail the apply');
    expect(down.transient).toBe(true);

    const wrong = await t.apply(await desired(env, namespace, `{ repo: "${served.url}", name: web, version: 1.1.0, digest: "sha256:${'0'.repeat(64)}" }`), ctx('c'));
    if (wrong.ok) throw new Error('a wrong digest must fail the apply');
    expect(wrong.transient).toBeFalsy();
    expect(wrong.message).toMatch(/digest/);
    expect(kubectl('-n', namespace, 'get', 'deploy', 'web', '-o', 'jsonpath={.spec.template.spec.containers[0].image}')).toBe('registry.example/web:1.0.0');
  });
});
