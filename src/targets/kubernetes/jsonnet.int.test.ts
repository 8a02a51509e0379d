import { join } from 'node:path';
import { symlinkSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { renderRepository } from '../../render/index.js';
import { guestbookJsonnet, jsonnetSuite } from '../../../test/jsonnet.js';
import { tempDir, writeTree } from '../../../test/helpers.js';
import { checkImports } from './jsonnet.js';
import { renderApp } from './render.js';

const app = `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: guestbook }
spec:
  manifests: guestbook
  jsonnet:
    tlas: { replicas: { code: "2" } }
    extVars: { tier: frontend }
    libs: [../lib/jsonnet]
`;
const env = (entry = '{}') => `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata: { name: prod }
spec:
  target: { kubernetes: { namespace: gb } }
  apps:
    guestbook: ${entry}
`;

/** The repository's desired guestbook rendered by the Kubernetes target's own renderApp, with the real jsonnet. */
async function render(files: Record<string, string>, entry?: string) {
  const tmp = tempDir('keelson-jsonnet-');
  cleanups.push(tmp.cleanup);
  writeTree(tmp.dir, { 'apps/guestbook.yaml': app, 'envs/prod.yaml': env(entry), ...guestbookJsonnet, ...files });
  const { desired, issues } = await renderRepository({ root: tmp.dir });
  expect(issues).toEqual([]);
  return renderApp(desired.environments[0].apps[0], tmp.dir);
}
const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));

jsonnetSuite('Jsonnet manifests with the real jsonnet CLI', () => {
  it('renders top-level arguments, external variables and a -J library; the environment overrides by name', async () => {
    const objects = await render({});
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(['Deployment/guestbook-ui', 'Service/guestbook-ui']);
    const deploy = objects[0] as any;
    expect(deploy.spec.replicas).toBe(2);
    expect(deploy.metadata.labels).toEqual({ app: 'guestbook-ui' });
    expect(deploy.spec.template.spec.containers[0].env).toEqual([{ name: 'TIER', value: 'frontend' }]);

    const prod = await render({}, '{ jsonnet: { tlas: { replicas: { code: "5" }, name: gb }, extVars: { tier: edge } } }');
    expect(prod.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(['Deployment/gb', 'Service/gb']);
    expect((prod[0] as any).spec.replicas).toBe(5);
    expect((prod[0] as any).spec.template.spec.containers[0].env[0].value).toBe('edge');
  });

  it('a runtime error fails with Jsonnet\'s own position, relative to the repository', async () => {
    const err = await render({ 'apps/guestbook/main.jsonnet': "function(replicas) [\n  { apiVersion: 'v1', kind: 'ConfigMap',\n    metadata: { name: if replicas > 1 then error 'at most one replica' else 'x' } },\n]\n" }).catch((e) => e);
    expect(String(err.message)).toBe("apps/guestbook/main.jsonnet:3:44: jsonnet error: at most one replica");
  });

  it('a syntax error, and an error in an imported library, name the file that has it', async () => {
    const syntax = await render({ 'apps/guestbook/main.jsonnet': "function(replicas) {\n  a: 1\n  b: 2\n}\n" }).catch((e) => e);
    expect(String(syntax.message)).toBe('apps/guestbook/main.jsonnet:3:3: jsonnet syntax error: Expected a comma before next field');
    const lib = await render({ 'lib/jsonnet/labels.libsonnet': "{ of(name):: error 'labels are broken' }\n" }).catch((e) => e);
    expect(String(lib.message)).toMatch(/^lib\/jsonnet\/labels\.libsonnet:1:14: jsonnet error: labels are broken$/);
  });

  it('a file that evaluates to no objects makes the app an error, named at its App file', async () => {
    const err = await render({ 'apps/guestbook/main.jsonnet': 'function(replicas) []\n' }).catch((e) => e);
    expect(String(err.message)).toMatch(/^apps\/guestbook\.yaml:1:1: App guestbook: manifests directory apps\/guestbook rendered no objects/);
  });

  it('without the jsonnet CLI the error says what to install', async () => {
    const saved = process.env.KEELSON_JSONNET_BIN;
    process.env.KEELSON_JSONNET_BIN = join(tempDir().dir, 'no-such-jsonnet');
    try {
      const err = await render({}).catch((e) => e);
      expect(String(err.message)).toMatch(/apps\/guestbook\/main\.jsonnet: this manifests directory holds \.jsonnet files, but the jsonnet CLI .* was not found; install go-jsonnet/);
    } finally {
      process.env.KEELSON_JSONNET_BIN = saved;
    }
  });
});

it('a directory of only .libsonnet files renders no objects, and says why (no jsonnet needed)', async () => {
  const tmp = tempDir('keelson-jsonnet-');
  cleanups.push(tmp.cleanup);
  writeTree(tmp.dir, {
    'apps/guestbook.yaml': 'apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata: { name: guestbook }\nspec:\n  manifests: guestbook\n',
    'envs/prod.yaml': env(),
    'apps/guestbook/params.libsonnet': '{}',
  });
  const { desired } = await renderRepository({ root: tmp.dir });
  const err = await renderApp(desired.environments[0].apps[0], tmp.dir).catch((e) => e);
  expect(err.message).toBe(
    'apps/guestbook.yaml:1:1: App guestbook: manifests directory apps/guestbook rendered no objects (no .yaml/.yml/.json files (found .libsonnet); only top-level .jsonnet files are rendered, .libsonnet files are libraries they import); an app with nothing to deploy is an error: add manifests, or remove the app from the environment',
  );
});

describe('Jsonnet imports stay inside the repository (checked before jsonnet runs)', () => {
  const setup = (files: Record<string, string>) => {
    const tmp = tempDir('keelson-jsonnet-imports-');
    cleanups.push(tmp.cleanup);
    writeTree(join(tmp.dir, 'repo'), files);
    return join(tmp.dir, 'repo');
  };

  it('accepts imports next to the file and in library directories, followed through libraries', async () => {
    const root = setup({ 'app/main.jsonnet': "import 'a.libsonnet'", 'app/a.libsonnet': "import \"b.libsonnet\" + importstr 'data.txt'", 'lib/b.libsonnet': '{}', 'app/data.txt': 'x' });
    await expect(checkImports(['app/main.jsonnet'], root, ['app', 'lib'])).resolves.toBeUndefined();
  });

  it('rejects an absolute import and one escaping through .. or a symlink, at its file:line:col', async () => {
    const abs = setup({ 'app/main.jsonnet': "local x = 1;\n  importstr '/etc/passwd'" });
    await expect(checkImports(['app/main.jsonnet'], abs, ['app'])).rejects.toThrow(/^app\/main\.jsonnet:2:3: jsonnet import "\/etc\/passwd" is an absolute path/);
    const up = setup({ 'app/main.jsonnet': "import 'lib.libsonnet'", 'app/lib.libsonnet': "importstr '../../outside.txt'" });
    writeTree(join(up, '..'), { 'outside.txt': 'secret' });
    await expect(checkImports(['app/main.jsonnet'], up, ['app'])).rejects.toThrow(/^app\/lib\.libsonnet:1:1: jsonnet import "\.\.\/\.\.\/outside\.txt" resolves to .*outside\.txt, outside the repository/);
    const link = setup({ 'app/main.jsonnet': "importbin 'key'" });
    symlinkSync('/etc/hostname', join(link, 'app/key'));
    await expect(checkImports(['app/main.jsonnet'], link, ['app'])).rejects.toThrow(/outside the repository/);
  });
});
