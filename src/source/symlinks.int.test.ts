import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { commitAll, gitInit, runCli, tempDir, writeTree } from '../../test/helpers.js';
import { renderRepository } from '../render/index.js';
import { checkoutReader } from '../secrets/resolve.js';

const env = (name: string, apps: string, target = '') => `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata: { name: ${name} }
spec:
${target}  apps: { ${apps} }
`;

/**
 * A committed symlink that leads out of the repository: `keelson validate` (and so the engine, which renders the
 * same way) rejects the artifact directory, the manifests directory and the secret file it names, at file:line:col.
 */
describe('symlinks out of the ops repository', () => {
  const tmp = tempDir('keelson-symlinks-');
  const ops = join(tmp.dir, 'ops');
  const outside = join(tmp.dir, 'outside');
  mkdirSync(outside);
  writeFileSync(join(outside, 'server.js'), 'require("child_process")\n');
  writeFileSync(join(outside, 'id_ed25519'), 'PRIVATE KEY\n');
  writeFileSync(join(outside, 'cm.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: x }\n');
  writeTree(ops, {
    'apps/web.yaml': `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: web }
spec:
  version: "1"
  artifact: { path: ../releases/web }
  run: { command: ["node", "server.js"] }
`,
    'apps/api.yaml': `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: api }
spec:
  version: "1"
  artifact: { path: ../releases/api }
  run: { command: ["node", "server.js"] }
  secrets:
    env:
      - { name: KEY, file: ../secrets/key.enc.yaml, key: key }
`,
    'apps/kube.yaml': `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: kube }
spec:
  version: "1"
  manifests: ../manifests/kube
`,
    'environments/dev.yaml': env('dev', 'web: {}, api: {}'),
    'environments/k8s.yaml': env('k8s', 'kube: {}', '  target: { kubernetes: { namespace: k8s } }\n'),
    'releases/api/server.js': 'ok\n',
  });
  symlinkSync(outside, join(ops, 'releases/web'));
  mkdirSync(join(ops, 'secrets'));
  symlinkSync(join(outside, 'id_ed25519'), join(ops, 'secrets/key.enc.yaml'));
  mkdirSync(join(ops, 'manifests'));
  symlinkSync(outside, join(ops, 'manifests/kube'));
  gitInit(ops);
  commitAll(ops, 'symlinks out');
  afterAll(() => tmp.cleanup());

  it('keelson validate rejects each, where it is declared', () => {
    const r = runCli(['validate', '--repo', ops]);
    expect(r.code).not.toBe(0);
    const out = r.stdout + r.stderr;
    expect(out).toMatch(/apps\/web\.yaml:6:\d+: .*artifact path "\.\.\/releases\/web" resolves to .*outside, outside the repository root/);
    expect(out).toMatch(/apps\/kube\.yaml:6:\d+: .*manifests directory "\.\.\/manifests\/kube" .*outside the repository root/);
    expect(out).toMatch(/apps\/api\.yaml:\d+:\d+: .*secret file "\.\.\/secrets\/key\.enc\.yaml" resolves to .*id_ed25519, outside the repository root/);
    expect(out).not.toContain('PRIVATE KEY');
  });

  it('the engine renders the same issues, and the secret reader refuses the file too', async () => {
    const { issues } = await renderRepository({ root: ops });
    expect(issues.map((i) => `${i.file}:${i.line}`).sort()).toEqual(expect.arrayContaining(['apps/api.yaml:10', 'apps/kube.yaml:6', 'apps/web.yaml:6']));
    await expect(checkoutReader(ops)('secrets/key.enc.yaml')).rejects.toThrow(/outside the repository/);
  });
});
