import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { DesiredApp } from '../../core/model.js';
import { writeTree } from '../../../test/helpers.js';
import { applyOverrides, imageObjects, parseManifests, renderApp, retag } from './render.js';

const base: DesiredApp = {
  name: 'web',
  env: 'prod',
  version: '1.2.0',
  artifact: {},
  command: [],
  vars: { GREETING: 'hi' },
  replicas: 2,
  port: 8080,
  readiness: { http: { path: '/healthz' }, initialDelaySeconds: 0, periodSeconds: 5, timeoutSeconds: 1, failureThreshold: 3, successThreshold: 1 },
  dependsOn: [],
  progressDeadlineSeconds: 60,
  terminationGracePeriodSeconds: 10,
  source: { file: 'apps/web.yaml', line: 1, col: 1 },
  image: 'ghcr.io/acme/web:1.2.0',
};

const dir = mkdtempSync(join(tmpdir(), 'keelson-k8s-render-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('image apps', () => {
  it('render to a Deployment with replicas, env, probes and rolling update, plus a Service for the port', () => {
    const [d, s] = imageObjects(base) as any[];
    expect(d.kind).toBe('Deployment');
    expect(d.spec.replicas).toBe(2);
    expect(d.spec.progressDeadlineSeconds).toBe(60);
    expect(d.spec.strategy.type).toBe('RollingUpdate');
    const c = d.spec.template.spec.containers[0];
    expect(c.image).toBe('ghcr.io/acme/web:1.2.0');
    expect(c.env).toEqual([{ name: 'GREETING', value: 'hi' }, { name: 'PORT', value: '8080' }]);
    expect(c.readinessProbe.httpGet).toEqual({ path: '/healthz', port: 8080 });
    expect(s.kind).toBe('Service');
    expect(s.spec.ports[0]).toMatchObject({ port: 8080, targetPort: 8080 });
  });

  it('have no Service without a port', () => {
    const { port: _p, ...noPort } = base;
    expect(imageObjects(noPort as DesiredApp).map((o) => o.kind)).toEqual(['Deployment']);
  });
});

describe('manifests', () => {
  it('reads multi-document YAML recursively and flattens Lists', async () => {
    writeTree(join(dir, 'm1'), {
      'a.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n# only a comment\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n',
      'sub/b.yml': 'apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: b}\n',
      'README.md': 'not yaml',
    });
    const app: DesiredApp = { ...base, image: undefined, manifests: { dir: 'm1', replicas: false }, artifact: { path: 'm1' } };
    const objects = await renderApp(app, dir);
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(['ConfigMap/a', 'Service/s', 'Secret/b']);
  });

  it('builds a kustomization with kustomize or kubectl', async () => {
    writeTree(join(dir, 'k'), {
      'kustomization.yaml': 'resources: [cm.yaml]\nnamePrefix: x-\n',
      'cm.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: v}\n',
    });
    const app: DesiredApp = { ...base, image: undefined, manifests: { dir: 'k', replicas: false }, artifact: { path: 'k' } };
    const objects = await renderApp(app, dir);
    expect(objects.map((o) => o.metadata.name)).toEqual(['x-a']);
  });

  it('says where a manifest lacks its kind', () => {
    expect(() => parseManifests('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nfoo: bar\n', 'x.yaml')).toThrow(/x.yaml:4: a manifest needs apiVersion, kind and metadata.name/);
  });

  it('accepts generateName only on hooks (Argo CD or Helm); every other object needs a name', () => {
    const hook = (annotations: string) => `apiVersion: batch/v1\nkind: Job\nmetadata:\n  generateName: migrate-\n  annotations: {${annotations}}\n`;
    expect(parseManifests(hook('argocd.argoproj.io/hook: PreSync'), 'h.yaml')[0].metadata).toMatchObject({ generateName: 'migrate-' });
    expect(parseManifests(hook('helm.sh/hook: pre-install'), 'h.yaml')).toHaveLength(1);
    expect(() => parseManifests(hook('team: a'), 'h.yaml')).toThrow(/h.yaml:1: a manifest needs apiVersion, kind and metadata.name/);
  });

  it('applies overrides: version to the named image, explicit replicas, env', () => {
    const d = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web' },
      spec: { replicas: 3, template: { spec: { containers: [{ name: 'web', image: 'ghcr.io/acme/web:1.0', env: [{ name: 'GREETING', value: 'old' }] }, { name: 'side', image: 'envoy:1' }] } } },
    };
    const app: DesiredApp = { ...base, image: 'ghcr.io/acme/web', manifests: { dir: 'm', replicas: false } };
    const out = applyOverrides(d, app) as any;
    expect(out.spec.replicas).toBe(3);
    expect(out.spec.template.spec.containers[0].image).toBe('ghcr.io/acme/web:1.2.0');
    expect(out.spec.template.spec.containers[1].image).toBe('envoy:1');
    expect(out.spec.template.spec.containers[0].env).toEqual([{ name: 'GREETING', value: 'hi' }]);
    expect((applyOverrides(d, { ...app, manifests: { dir: 'm', replicas: true } }) as any).spec.replicas).toBe(2);
  });

  it('retags only the image it is told about', () => {
    expect(retag('nginx:1.0', 'nginx', '1.1')).toBe('nginx:1.1');
    expect(retag('registry:5000/nginx', 'registry:5000/nginx', '2')).toBe('registry:5000/nginx:2');
    expect(retag('other:1', 'nginx', '1.1')).toBe('other:1');
  });
});
