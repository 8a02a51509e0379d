import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import { formatIssue } from '../core/types.js';
import { renderRepository } from './render.js';

async function render(files: Record<string, string>, links: Record<string, string> = {}) {
  const root = await mkdtemp(join(tmpdir(), 'keelson-params-'));
  onTestFinished(() => rm(root, { recursive: true, force: true }));
  for (const [file, text] of Object.entries(files)) {
    await mkdir(dirname(join(root, file)), { recursive: true });
    await writeFile(join(root, file), text);
  }
  for (const [link, to] of Object.entries(links)) await symlink(to, join(root, link));
  const res = await renderRepository({ root });
  return { ...res, messages: res.issues.map(formatIssue) };
}

const k8sEnv = (apps: string) => `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata: { name: prod }
spec:
  target: { kubernetes: { namespace: web } }
  apps:
${apps}`;

describe('version is required only where something uses it', () => {
  test('a manifests app on Kubernetes needs no version; it is empty in the desired state', async () => {
    const { messages, desired } = await render({
      'apps/gb.yaml': 'apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata: { name: gb }\nspec:\n  manifests: gb\n',
      'apps/gb/cm.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: a }\n',
      'envs/prod.yaml': k8sEnv('    gb: {}\n'),
    });
    expect(messages).toEqual([]);
    expect(desired.environments[0].apps[0].version).toBe('');
  });

  test('an image app, and any app on the local target, needs one, reported at the environment entry', async () => {
    const { messages } = await render({
      'apps/web.yaml': 'apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata: { name: web }\nspec:\n  image: nginx\n',
      'apps/tick.yaml': 'apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata: { name: tick }\nspec:\n  artifact: { path: . }\n  run: { command: [node] }\n',
      'envs/prod.yaml': k8sEnv('    web: {}\n'),
      'envs/dev.yaml': 'apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: dev }\nspec:\n  apps:\n    tick: {}\n',
    });
    expect(messages).toEqual([
      'envs/dev.yaml:6:5: environment "dev" runs App "tick" (apps/tick.yaml:4:1) without a version, but the local target runs releases by version; add spec.version (a quoted string, e.g. "1.0.0") to the App or version to this entry',
      'envs/prod.yaml:7:5: environment "prod" runs App "web" (apps/web.yaml:4:1) without a version, but its image takes the version as its tag; add spec.version (a quoted string, e.g. "1.0.0") to the App or version to this entry',
    ]);
  });

  test("an environment entry's version is enough", async () => {
    const { messages } = await render({
      'apps/web.yaml': 'apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata: { name: web }\nspec:\n  image: nginx\n',
      'envs/prod.yaml': k8sEnv('    web: { version: "1.2" }\n'),
    });
    expect(messages).toEqual([]);
  });
});

describe('spec.jsonnet', () => {
  const gb = (jsonnet: string) =>
    `apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata: { name: gb }\nspec:\n  manifests: gb\n  jsonnet:\n${jsonnet}`;

  test("the environment entry's tlas and extVars replace the App's by name; libs are repository paths", async () => {
    const { messages, desired } = await render({
      'apps/gb.yaml': gb('    tlas: { replicas: { code: "1" }, name: gb }\n    extVars: { env: base }\n    libs: [../lib]\n'),
      'apps/gb/main.jsonnet': '{}',
      'lib/x.libsonnet': '{}',
      'envs/prod.yaml': k8sEnv('    gb:\n      jsonnet: { tlas: { replicas: { code: "3" } }, extVars: { region: eu } }\n'),
    });
    expect(messages).toEqual([]);
    expect(desired.environments[0].apps[0].jsonnet).toEqual({
      tlas: { replicas: { code: '3' }, name: 'gb' },
      extVars: { env: 'base', region: 'eu' },
      libs: ['lib'],
    });
  });

  test('a library outside the repository, also through a symlink, or missing, is an error at its line', async () => {
    const outside = await mkdtemp(join(tmpdir(), 'keelson-outside-'));
    onTestFinished(() => rm(outside, { recursive: true, force: true }));
    const { messages } = await render(
      {
        'apps/gb.yaml': gb('    libs: [../../.., ../escape, ../nope]\n'),
        'apps/gb/main.jsonnet': '{}',
        'envs/prod.yaml': k8sEnv('    gb: {}\n'),
      },
      { escape: outside },
    );
    expect(messages).toHaveLength(3);
    expect(messages[0]).toMatch(/^apps\/gb\.yaml:7:12: App "gb": jsonnet library "\.\.\/\.\.\/\.\." resolves to .*, outside the repository/);
    expect(messages[1]).toMatch(/^apps\/gb\.yaml:7:22: App "gb": jsonnet library "\.\.\/escape" resolves to .*keelson-outside-.*, outside the repository/);
    expect(messages[2]).toMatch(/^apps\/gb\.yaml:7:33: App "gb": jsonnet library "\.\.\/nope" does not exist \(nope\)/);
  });

  test('parameter names must be Jsonnet identifiers', async () => {
    const { messages } = await render({
      'apps/gb.yaml': gb('    tlas: { "bad-name": x }\n'),
      'envs/prod.yaml': k8sEnv('    gb: {}\n'),
    });
    expect(messages.join('\n')).toMatch(/apps\/gb\.yaml:7:.*must be a Jsonnet identifier/);
  });
});
