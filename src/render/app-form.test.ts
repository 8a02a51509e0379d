import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir, writeTree } from '../../test/helpers.js';
import { imageWithVersion } from './app-form.js';
import { renderRepository } from './render.js';

const tmp = tempDir('keelson-app-form-');
afterAll(() => tmp.cleanup());

const env = (name: string, target: string, apps: string) =>
  `apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: ${name} }\nspec:\n  target: ${target}\n  apps: ${apps}\n`;

describe('app forms per target', () => {
  it('renders image and manifests apps for Kubernetes with the environment overrides', async () => {
    const root = join(tmp.dir, 'ok');
    writeTree(root, {
      'apps/web.yaml': 'apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata: { name: web }\nspec:\n  version: "1.0"\n  image: ghcr.io/acme/web\n  port: 8080\n',
      'apps/shop.yaml': 'apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata: { name: shop }\nspec:\n  version: "2.0"\n  image: ghcr.io/acme/shop\n  manifests: ../manifests/shop\n',
      'manifests/shop/d.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: x }\n',
      'envs/prod.yaml': env('prod', '{ kubernetes: { namespace: shop } }', '{ web: { version: "1.1", replicas: 3 }, shop: { env: { A: b } } }'),
    });
    const { desired, issues } = await renderRepository({ root });
    expect(issues).toEqual([]);
    const [web, shop] = ['web', 'shop'].map((n) => desired.environments[0].apps.find((a) => a.name === n)!);
    expect(web).toMatchObject({ image: 'ghcr.io/acme/web:1.1', replicas: 3, command: [] });
    expect(shop).toMatchObject({ image: 'ghcr.io/acme/shop', manifests: { dir: 'manifests/shop', replicas: false }, vars: { A: 'b' } });
    expect(shop.artifact.path).toBe(join(root, 'manifests/shop'));
    expect(desired.environments[0].target).toEqual({ kubernetes: { namespace: 'shop' } });
  });

  it('says what each target needs of an App, at the environment entry', async () => {
    const root = join(tmp.dir, 'bad');
    writeTree(root, {
      'apps.yaml':
        'apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata: { name: img }\nspec:\n  version: "1"\n  image: nginx\n---\n' +
        'apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata: { name: proc }\nspec:\n  version: "1"\n  artifact: { path: rel }\n  run: { command: [node, s.js] }\n',
      'rel/s.js': '',
      'local.yaml': env('dev', '{ local: {} }', '{ img: {} }'),
      'k8s.yaml': env('prod', '{ kubernetes: { namespace: p } }', '{ proc: {} }'),
    });
    const { issues } = await renderRepository({ root });
    expect(issues.map((i) => `${i.file}:${i.line}:${i.col}: ${i.message}`)).toEqual([
      'k8s.yaml:6:11: environment "prod" runs on Kubernetes, but App "proc" (apps.yaml:11:1) has neither "image" nor "manifests"; add spec.image (a container image) or spec.manifests (a directory of Kubernetes YAML)',
      'local.yaml:6:11: environment "dev" runs on the local target, but App "img" (apps.yaml:4:1) has no "artifact" (a directory path or a .tar.gz url) and no "run.command" (the argv of the process); "image" and "manifests" are for environments with target kubernetes',
    ]);
  });

  it('puts the version into the image tag', () => {
    expect(imageWithVersion('nginx', '1.2')).toBe('nginx:1.2');
    expect(imageWithVersion('registry:5000/web:{version}-alpine', '1.2')).toBe('registry:5000/web:1.2-alpine');
  });
});
