import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli, tempDir, writeTree } from '../../test/helpers.js';
import { guestbookJsonnet, jsonnetSuite } from '../../test/jsonnet.js';

/** `keelson validate` renders every Kubernetes app's manifests offline (bin/keelson: built). */
const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));

const app = (name: string, dir: string, extra = '') =>
  `apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata: { name: ${name} }\nspec:\n  manifests: ${dir}\n${extra}`;
const env = (name: string, apps: string[]) =>
  `apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: ${name} }\nspec:\n  target: { kubernetes: { namespace: ${name} } }\n  apps:\n${apps.map((a) => `    ${a}: {}\n`).join('')}`;
const cm = (name: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\ndata:\n  a: "1"\n`;

function validate(files: Record<string, string>) {
  const tmp = tempDir('keelson-validate-manifests-');
  cleanups.push(tmp.cleanup);
  const ops = join(tmp.dir, 'ops');
  writeTree(ops, files);
  const r = runCli(['validate', '--repo', ops]);
  return { ...r, lines: r.stdout.trim().split('\n') };
}

describe('keelson validate renders manifests', () => {
  it('places a YAML error in a manifest file at its line and column, and a manifest without kind at its line', () => {
    const r = validate({
      'apps/web.yaml': app('web', 'web'),
      'apps/web/ok.yaml': cm('ok'),
      'apps/web/bad.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels: [a\n',
      'apps/api.yaml': app('api', 'api'),
      'apps/api/cm.yaml': `${cm('a')}---\nkind: ConfigMap\nmetadata: { name: b }\n`,
      'envs/prod.yaml': env('prod', ['web', 'api']),
    });
    expect(r.code).toBe(1);
    expect(r.lines).toEqual([
      'apps/api/cm.yaml:7: a manifest needs apiVersion, kind and metadata.name (App api in environment prod)',
      expect.stringMatching(/^apps\/web\/bad\.yaml:6:1: invalid YAML: .* \(App web in environment prod\)$/),
    ]);
    expect(r.stderr).toContain('2 problems found');
  });

  it('names the kustomization of a failing kustomize build', () => {
    const r = validate({
      'apps/web.yaml': app('web', 'web'),
      'apps/web/kustomization.yaml': 'resources:\n  - missing.yaml\n',
      'envs/prod.yaml': env('prod', ['web']),
    });
    expect(r.code).toBe(1);
    expect(r.lines).toHaveLength(1);
    expect(r.lines[0]).toMatch(/^apps\/web\/kustomization\.yaml: kubectl kustomize failed: .*missing\.yaml.* \(App web in environment prod\)$/s);
  });

  it('reports an app that renders no objects at its App file, once for identical environments', () => {
    const r = validate({
      'apps/web.yaml': app('web', 'web'),
      'apps/web/README.md': 'nothing here\n',
      'envs/prod.yaml': env('prod', ['web']),
      'envs/staging.yaml': env('staging', ['web']),
    });
    expect(r.code).toBe(1);
    expect(r.lines).toEqual([
      'apps/web.yaml:1:1: App web: manifests directory apps/web rendered no objects (no .yaml/.yml/.json files (found .md)); an app with nothing to deploy is an error: add manifests, or remove the app from the environment',
    ]);
  });

  it('renders each distinct app once and says how many renders it made', () => {
    const r = validate({
      'apps/web.yaml': app('web', 'web'),
      'apps/web/cm.yaml': cm('web'),
      'envs/prod.yaml': env('prod', ['web']),
      'envs/staging.yaml': env('staging', ['web']),
      'envs/dev.yaml': `apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: dev }\nspec:\n  target: { kubernetes: { namespace: dev } }\n  apps:\n    web: { replicas: 2 }\n`,
    });
    expect(r.stderr).toBe('');
    expect(r.lines).toEqual(['ok: 3 environment(s), 3 app deployment(s), 2 distinct manifests rendered']);
  });
});

jsonnetSuite('keelson validate with Jsonnet apps', () => {
  it("places a Jsonnet error at Jsonnet's own position, in the environment whose parameters cause it", () => {
    const r = validate({
      ...guestbookJsonnet,
      'apps/guestbook/main.jsonnet': "function(replicas) [\n  { apiVersion: 'v1', kind: 'ConfigMap',\n    metadata: { name: if replicas > 3 then error 'at most three replicas' else 'x' } },\n]\n",
      'apps/guestbook.yaml': app('guestbook', 'guestbook', '  jsonnet:\n    tlas: { replicas: { code: "1" } }\n'),
      'envs/dev.yaml': env('dev', ['guestbook']),
      'envs/prod.yaml': `${env('prod', [])}    guestbook: { jsonnet: { tlas: { replicas: { code: "5" } } } }\n`,
    });
    expect(r.lines).toEqual(['apps/guestbook/main.jsonnet:3:44: jsonnet error: at most three replicas (App guestbook in environment prod)']);
    expect(r.code).toBe(1);
  });

  it('validates the guestbook with tlas, extVars and a -J library', () => {
    const r = validate({
      ...guestbookJsonnet,
      'apps/guestbook.yaml': app('guestbook', 'guestbook', '  jsonnet:\n    tlas: { replicas: { code: "2" } }\n    extVars: { tier: web }\n    libs: [../lib/jsonnet]\n'),
      'envs/prod.yaml': env('prod', ['guestbook']),
    });
    expect(r.lines).toEqual(['ok: 1 environment(s), 1 app deployment(s), 1 distinct manifests rendered']);
  });
});
