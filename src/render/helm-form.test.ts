import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import { formatIssue } from '../core/types.js';
import { mergeValues } from './helm-form.js';
import { renderRepository } from './render.js';

async function render(files: Record<string, string>, links: Record<string, string> = {}) {
  const root = await mkdtemp(join(tmpdir(), 'keelson-helm-form-'));
  onTestFinished(() => rm(root, { recursive: true, force: true }));
  for (const [file, text] of Object.entries(files)) {
    await mkdir(dirname(join(root, file)), { recursive: true });
    await writeFile(join(root, file), text);
  }
  for (const [link, to] of Object.entries(links)) await symlink(to, join(root, link));
  const res = await renderRepository({ root });
  return { ...res, messages: res.issues.map(formatIssue) };
}

const chart = {
  'charts/web/Chart.yaml': 'apiVersion: v2\nname: web\nversion: 0.1.0\n',
  'charts/web/values-common.yaml': 'replicas: 1\n',
  'values/prod.yaml': 'replicas: 3\n',
};

const appDoc = (helm: string) => `apiVersion: keelson.dev/v1alpha1
kind: App
metadata:
  name: web
spec:
  version: "1.0.0"
  manifests: ../charts/web
${helm}`;

const envDoc = (entry: string) => `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata:
  name: prod
spec:
  target:
    kubernetes: { namespace: prod }
  apps:
    web:${entry}
`;

describe('spec.helm', () => {
  test('release name, values merged (the environment entry over the App), values files as repository paths in order', async () => {
    const r = await render({
      ...chart,
      'apps/web.yaml': appDoc(`  helm:
    releaseName: shop
    values: { image: { repository: web, tag: "1" }, greeting: hi }
    valuesFiles: [values-common.yaml]
`),
      'envs/prod.yaml': envDoc(`
      helm:
        values: { image: { tag: "2" }, extra: [1, 2] }
        valuesFiles: [../../values/prod.yaml]
        tests: afterSync`),
    });
    expect(r.messages).toEqual([]);
    const web = r.desired.environments[0].apps[0];
    expect(web.helm).toEqual({
      releaseName: 'shop',
      values: { image: { repository: 'web', tag: '2' }, greeting: 'hi', extra: [1, 2] },
      valuesFiles: ['charts/web/values-common.yaml', 'values/prod.yaml'],
      valuesDigest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
      tests: 'afterSync',
    });
    expect(web.manifests).toEqual({ dir: 'charts/web', replicas: false });
  });

  test('a changed values file changes the digest (so the app re-renders)', async () => {
    const files = { ...chart, 'apps/web.yaml': appDoc('  helm:\n    valuesFiles: [../../values/prod.yaml]\n'), 'envs/prod.yaml': envDoc('') };
    const a = await render(files);
    const b = await render({ ...files, 'values/prod.yaml': 'replicas: 4\n' });
    expect(a.desired.environments[0].apps[0].helm?.valuesDigest).not.toBe(b.desired.environments[0].apps[0].helm?.valuesDigest);
  });

  test('a missing values file is an error at the field; outside the repository too, also through a symlink', async () => {
    const r = await render(
      {
        ...chart,
        'apps/web.yaml': appDoc('  helm:\n    valuesFiles:\n      - values-common.yaml\n      - nope.yaml\n      - ../../../outside.yaml\n      - escape.yaml\n'),
        'envs/prod.yaml': envDoc('\n      helm: { valuesFiles: [missing-prod.yaml] }'),
      },
      { 'charts/web/escape.yaml': '/etc/hostname' },
    );
    expect(r.messages).toEqual([
      'apps/web.yaml:11:9: App "web": values file "nope.yaml" (charts/web/nope.yaml) does not exist; values files are relative to the chart directory',
      expect.stringMatching(/^apps\/web\.yaml:12:9: App "web": values file "\.\.\/\.\.\/\.\.\/outside\.yaml" resolves to .*, outside the repository/),
      expect.stringMatching(/^apps\/web\.yaml:13:9: App "web": values file "escape\.yaml" is a symlink to \/etc\/hostname, outside the repository/),
      'envs/prod.yaml:10:29: App "web": values file "missing-prod.yaml" (charts/web/missing-prod.yaml) does not exist; values files are relative to the chart directory',
    ]);
  });

  test('a remote chart instead of manifests; both, or neither, is an error; an http repository needs a name', async () => {
    const remote = appDoc('').replace('  manifests: ../charts/web\n', '  helm:\n    chart: { repo: "https://charts.example.com", name: web, version: 1.2.3 }\n');
    const ok = await render({ 'apps/web.yaml': remote, 'envs/prod.yaml': envDoc('') });
    expect(ok.messages).toEqual([]);
    expect(ok.desired.environments[0].apps[0].helm).toEqual({ releaseName: 'web', values: {}, valuesFiles: [], chart: { repo: 'https://charts.example.com', name: 'web', version: '1.2.3' } });

    const both = await render({ ...chart, 'apps/web.yaml': appDoc('  helm:\n    chart: { repo: "oci://registry.example/charts/web", version: 1.2.3 }\n'), 'envs/prod.yaml': envDoc('') });
    expect(both.messages).toEqual(['apps/web.yaml:9:12: App "web": set either "manifests" (a chart directory) or "helm.chart" (a remote chart), not both']);

    const noName = await render({ 'apps/web.yaml': remote.replace('name: web, ', ''), 'envs/prod.yaml': envDoc('') });
    expect(noName.messages.join('\n')).toMatch(/needs "name"/);

    const neither = await render({ 'apps/web.yaml': appDoc('  helm: { releaseName: x }\n').replace('  manifests: ../charts/web\n', '  image: web\n'), 'envs/prod.yaml': envDoc('') });
    expect(neither.messages).toEqual(['apps/web.yaml:8:3: App "web": spec.helm needs a chart: set spec.manifests to a chart directory (with a Chart.yaml) or spec.helm.chart to a remote chart']);
  });

  test('a chart directory without spec.helm has no helm settings (the target uses the app name, no values)', async () => {
    const r = await render({ ...chart, 'apps/web.yaml': appDoc(''), 'envs/prod.yaml': envDoc('') });
    expect(r.messages).toEqual([]);
    expect(r.desired.environments[0].apps[0].helm).toBeUndefined();
  });
});

test('mergeValues: maps merge, lists and scalars replace, null stays (Helm deletes the key)', () => {
  expect(mergeValues({ a: { b: 1, c: [1] }, d: 1, e: 2 }, { a: { c: [2], f: 3 }, d: { x: 1 }, e: null })).toEqual({ a: { b: 1, c: [2], f: 3 }, d: { x: 1 }, e: null });
});

describe('the version a Helm app shows', () => {
  test('without a declared version: the chart directory\'s Chart.yaml version, or the remote chart\'s pinned version', async () => {
    const local = await render({ ...chart, 'apps/web.yaml': appDoc('').replace('  version: "1.0.0"\n', ''), 'envs/prod.yaml': envDoc('') });
    expect(local.messages).toEqual([]);
    expect(local.desired.environments[0].apps[0].version).toBe('0.1.0');
    const remote = await render({
      'apps/web.yaml': appDoc('  helm:\n    chart: { repo: "https://charts.example.com", name: web, version: 2.3.4 }\n').replace('  version: "1.0.0"\n', '').replace('  manifests: ../charts/web\n', ''),
      'envs/prod.yaml': envDoc(''),
    });
    expect(remote.messages).toEqual([]);
    expect(remote.desired.environments[0].apps[0].version).toBe('2.3.4');
  });
  test('a declared version wins', async () => {
    const r = await render({ ...chart, 'apps/web.yaml': appDoc(''), 'envs/prod.yaml': envDoc('') });
    expect(r.desired.environments[0].apps[0].version).toBe('1.0.0');
  });
});
