import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { DesiredApp, HelmSpec } from '../../core/model.js';
import { root, tempDir } from '../../../test/helpers.js';
import { helmEnv, helmUnavailable, kubeCacheDir, renderHelm } from './helm.js';
import { kubernetesTemplateOf } from './template.js';
import { renderApp } from './render.js';

/** Offline rendering with the real Helm (no cluster): KEELSON_HELM_BIN from scripts/tools.sh, else helm on PATH. */
const why = helmUnavailable();
const suite = why && !process.env.CI ? describe.skip : describe;

const fixtures = join(root, 'test', 'fixtures', 'helm');

const chartApp = (dir: string, helm?: Partial<HelmSpec>): DesiredApp => ({
  name: 'web',
  env: 'dev',
  version: '1.0.0',
  artifact: { path: dir },
  command: [],
  vars: {},
  replicas: 1,
  dependsOn: [],
  progressDeadlineSeconds: 10,
  terminationGracePeriodSeconds: 5,
  source: { file: 'apps/web.yaml', line: 1, col: 1 },
  manifests: { dir, replicas: false },
  ...(helm ? { helm: { releaseName: 'web', values: {}, valuesFiles: [], ...helm } } : {}),
});

suite(`helm template, offline${why ? ` (${why})` : ''}`, () => {
  if (why) {
    it('can run here', () => {
      throw new Error(`Helm must be available in CI: ${why}`);
    });
    return;
  }
  const tmp = tempDir('keelson-helm-');
  afterAll(() => tmp.cleanup());
  const repo = join(tmp.dir, 'repo');
  cpSync(fixtures, join(repo, 'charts'), { recursive: true });
  writeFileSync(join(repo, 'prod-values.yaml'), 'greeting: from-prod-file\n');

  const byName = (objects: { kind: string; metadata: { name: string } }[], kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name) as any;

  it('renders a chart directory: values files in order, inline values last, release name, namespace; hooks and tests included', async () => {
    const app = chartApp('charts/web', { releaseName: 'shop', valuesFiles: ['charts/web/values-big.yaml', 'prod-values.yaml'], values: { image: 'registry.example/web:2.0.0' } });
    const objects = await renderApp(app, repo, { namespace: 'prod' });
    const deploy = byName(objects, 'Deployment', 'shop');
    expect(deploy.spec.replicas).toBe(2);
    expect(deploy.spec.template.spec.containers[0]).toMatchObject({ image: 'registry.example/web:2.0.0', env: [{ name: 'GREETING', value: 'from-prod-file' }, { name: 'INSTALLED_BY', value: 'install' }] });
    expect(byName(objects, 'Job', 'shop-pre-install').metadata.annotations['helm.sh/hook']).toBe('pre-install');
    expect(byName(objects, 'Job', 'shop-test-connection').metadata.annotations['helm.sh/hook']).toBe('test');
    // Offline: lookup finds nothing, and the capabilities are Helm's defaults unless given.
    expect(byName(objects, 'ConfigMap', 'shop-info').data.color).toBe('none');
    const upgrade = await renderApp(app, repo, { namespace: 'prod', install: false, capabilities: { kubeVersion: 'v1.31.4', apiVersions: ['v1', 'apps/v1', 'example.dev/v1'] } });
    expect(byName(upgrade, 'ConfigMap', 'shop-info').data.kubeVersion).toBe('v1.31.4');
    expect(byName(upgrade, 'Deployment', 'shop').spec.template.spec.containers[0].env[1].value).toBe('upgrade');
  });

  it('a chart directory without spec.helm: release = app name, the chart\'s own values', async () => {
    const objects = await renderApp(chartApp('charts/web'), repo);
    expect(byName(objects, 'Deployment', 'web').spec.template.spec.containers[0].env[0].value).toBe('hello');
  });

  it('sub-charts in charts/ and library charts render', async () => {
    const objects = await renderApp(chartApp('charts/umbrella'), repo, { namespace: 'x' });
    expect(byName(objects, 'ConfigMap', 'web-worker').data).toEqual({ queue: 'default' }); // the parent's values win
    expect(byName(objects, 'ConfigMap', 'web-settings')).toMatchObject({ metadata: { labels: { 'rendered-by': 'common-library' } }, data: { message: 'from-umbrella' } });
  });

  it('a template error names the template file and line as Helm prints it', async () => {
    await expect(renderApp(chartApp('charts/broken'), repo)).rejects.toThrow(/^helm template failed: execution error at \(broken\/templates\/configmap\.yaml:6:15\): values\.setting is required/);
  });

  it('a template producing invalid YAML names the template', async () => {
    const dir = join(repo, 'charts', 'bad-yaml');
    mkdirSync(join(dir, 'templates'), { recursive: true });
    writeFileSync(join(dir, 'Chart.yaml'), 'apiVersion: v2\nname: bad-yaml\nversion: 0.1.0\n');
    writeFileSync(join(dir, 'templates', 'cm.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: [unclosed\n');
    await expect(renderApp(chartApp('charts/bad-yaml'), repo)).rejects.toThrow(/bad-yaml\/templates\/cm\.yaml/);
  });

  it('a values file that vanished from the checkout is an error naming it', async () => {
    await expect(renderApp(chartApp('charts/web', { valuesFiles: ['gone.yaml'] }), repo)).rejects.toThrow('Helm chart charts/web: values file gone.yaml does not exist');
  });

  it('a symlink in the chart to a file outside the repository is refused before Helm reads it', async () => {
    const dir = join(repo, 'charts', 'leaky');
    cpSync(join(repo, 'charts', 'umbrella'), dir, { recursive: true });
    symlinkSync('/etc/hostname', join(dir, 'charts', 'worker', 'hostname.txt'));
    await expect(renderApp(chartApp('charts/leaky'), repo)).rejects.toThrow('Helm chart charts/leaky: charts/leaky/charts/worker/hostname.txt is a symlink to /etc/hostname, outside the repository');
    // A symlink that stays inside the repository is fine.
    rmSync(join(dir, 'charts', 'worker', 'hostname.txt'));
    symlinkSync('../../../../prod-values.yaml', join(dir, 'charts', 'worker', 'hostname.txt'));
    expect((await renderApp(chartApp('charts/leaky'), repo)).length).toBe(2);
  });

  it('a missing Helm binary is a clear error naming what to install', async () => {
    const before = process.env.KEELSON_HELM_BIN;
    process.env.KEELSON_HELM_BIN = join(tmp.dir, 'no-such-helm');
    try {
      await expect(renderApp(chartApp('charts/web'), repo)).rejects.toThrow(/is a Helm chart \(it holds a Chart\.yaml\), but the Helm binary ".*no-such-helm" was not found; install Helm v4/);
    } finally {
      process.env.KEELSON_HELM_BIN = before;
    }
  });

  it("Helm runs with its own homes, none of Keelson's secrets, and leaves the user's Helm config alone", async () => {
    const env = helmEnv('/tmp/h', undefined, { PATH: '/bin', HOME: '/home/u', KEELSON_TOKEN_ADMIN: 's', SOPS_AGE_KEY: 'k', HELM_CONFIG_HOME: '/home/u/.config/helm', KUBECONFIG: '/home/u/.kube/config' });
    expect(env).toEqual({ PATH: '/bin', HOME: '/home/u', HELM_CONFIG_HOME: '/tmp/h/config', HELM_CACHE_HOME: '/tmp/h/cache', HELM_DATA_HOME: '/tmp/h/data', HELM_CONTENT_CACHE: '/tmp/h/cache/content', KUBECACHEDIR: kubeCacheDir() });
    expect(helmEnv('/tmp/h', { kubeconfig: '/k/config' }, {}).KUBECONFIG).toBe('/k/config');
    // A real render with HOME pointing at an empty directory writes nothing there.
    const home = join(tmp.dir, 'home');
    mkdirSync(home);
    const before = process.env.HOME;
    process.env.HOME = home;
    try {
      await renderHelm(join(repo, 'charts', 'web'), chartApp('charts/web'), { namespace: 'x', checkoutDir: repo });
    } finally {
      process.env.HOME = before;
    }
    expect(readdirSync(home)).toEqual([]);
    expect(existsSync(join(home, '.config', 'helm'))).toBe(false);
  });

  it("the template hash changes with values and values files (the chart directory's digest covers files inside it)", () => {
    const a = chartApp('charts/web', { values: { x: 1 } });
    expect(kubernetesTemplateOf(a, 'ns')).not.toBe(kubernetesTemplateOf(chartApp('charts/web', { values: { x: 2 } }), 'ns'));
    expect(kubernetesTemplateOf(a, 'ns')).not.toBe(kubernetesTemplateOf(chartApp('charts/web', { values: { x: 1 }, valuesDigest: 'sha256:1' }), 'ns'));
    expect(kubernetesTemplateOf(a, 'ns')).not.toBe(kubernetesTemplateOf({ ...a, artifact: { ...a.artifact, digest: 'tree:2' } }, 'ns'));
  });
});
