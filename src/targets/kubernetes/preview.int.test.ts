import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Engine } from '../../engine/engine.js';
import { EventBus } from '../../core/events.js';
import { formatPreviewMarkdown, previewHasChanges } from '../../diff/preview-format.js';
import { silentLogger } from '../../log.js';
import { Store } from '../../store/store.js';
import { commitAll, git, gitInit, tempDir, waitFor, writeTree } from '../../../test/helpers.js';
import { guestbookJsonnet } from '../../../test/jsonnet.js';
import { deploymentYaml, kubectl, kubernetesSuite, uniqueNamespace } from '../../../test/k8s.js';
import { createTargetRegistry } from '../default-targets.js';
import { LocalTarget } from '../local/local-target.js';

/** `keelson diff --revision` on the real control plane: a pull request's branch previewed against live, nothing applied. */
kubernetesSuite('preview of a revision on Kubernetes', () => {
  const tmp = tempDir('keelson-k8s-preview-');
  const ops = join(tmp.dir, 'ops');
  const state = join(tmp.dir, 'state');
  const namespace = uniqueNamespace('k-preview');
  const password = `pw-${Math.random().toString(36).slice(2)}`;
  let engine: Engine;
  let store: Store;
  let local: LocalTarget;

  beforeAll(async () => {
    writeTree(ops, {
      'apps/shop.yaml': 'apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata: { name: shop }\nspec:\n  manifests: shop\n',
      'apps/shop/deployment.yaml': deploymentYaml('shop', { image: 'registry.example/shop:1', replicas: 1 }),
      // A Jsonnet app (the real jsonnet CLI) and one whose directory holds nothing to deploy.
      ...guestbookJsonnet,
      'apps/guestbook.yaml': 'apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata: { name: guestbook }\nspec:\n  manifests: guestbook\n  jsonnet:\n    tlas: { replicas: { code: "2" } }\n    extVars: { tier: frontend }\n    libs: [../lib/jsonnet]\n',
      'apps/hollow.yaml': 'apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata: { name: hollow }\nspec:\n  manifests: hollow\n',
      'apps/hollow/README.md': 'the manifests are elsewhere\n',
      'envs/prod.yaml': `apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: prod }\nspec:\n  target: { kubernetes: { namespace: ${namespace} } }\n  apps: { shop: {}, guestbook: {}, hollow: {} }\n`,
    });
    gitInit(ops);
    commitAll(ops, 'shop');
    const log = silentLogger();
    const bus = new EventBus();
    store = new Store(state);
    let e: Engine | undefined;
    local = new LocalTarget({ stateDir: state, store, bus, log, requeue: () => undefined });
    const targets = createTargetRegistry({ local, store, bus, log, requeue: (env) => e?.requeue(env), specOf: (env) => e?.targetSpecOf(env) });
    engine = e = new Engine({ repo: ops, stateDir: state, log, store, bus, target: targets, pollMs: 60_000 });
    await engine.start();
    await waitFor('shop and guestbook deployed', async () => {
      const apps = (await engine.status('prod')).environments[0]?.apps ?? [];
      return ['shop', 'guestbook'].every((n) => apps.find((a) => a.name === n)?.sync === 'Synced') && apps.find((a) => a.name === 'hollow')?.sync === 'Failed';
    }, 90_000);

    // The pull request: three replicas and a new Secret, on a branch; main stays deployed.
    git(ops, 'checkout', '-q', '-b', 'scale');
    writeTree(ops, {
      'apps/shop/deployment.yaml': deploymentYaml('shop', { image: 'registry.example/shop:1', replicas: 3 }),
      'apps/shop/secret.yaml': `apiVersion: v1\nkind: Secret\nmetadata: { name: shop-db }\nstringData: { password: ${password} }\n`,
    });
    commitAll(ops, 'shop: 3 replicas, database secret');
    git(ops, 'checkout', '-q', '-');
  }, 180_000);

  afterAll(async () => {
    await engine?.stop();
    await local?.supervisor.stopAll();
    await local?.proxy.stop();
    store?.close();
    kubectl('delete', 'namespace', namespace, '--wait=false', '--ignore-not-found');
    tmp.cleanup();
  });

  it('deploys a Jsonnet app with its parameters; an app rendering no objects fails at its file, never "Healthy, no objects"', async () => {
    expect(kubectl('get', 'deployment', 'guestbook-ui', '-n', namespace, '-o', 'jsonpath={.spec.replicas} {.spec.template.spec.containers[0].env[0].value}')).toBe('2 frontend');
    const apps = (await engine.status('prod')).environments[0].apps;
    const hollow = apps.find((a) => a.name === 'hollow')!;
    expect(hollow.sync).toBe('Failed');
    expect(hollow.message).toContain('apps/hollow.yaml:1:1: App hollow: manifests directory apps/hollow rendered no objects (no .yaml/.yml/.json files (found .md))');
    // No version declared: the revision shows instead.
    expect(apps.find((a) => a.name === 'guestbook')!.version).toMatch(/^[0-9a-f]{7}$/);
  });

  it('shows the replicas change and the new Secret in Markdown, never its value, and changes nothing live', async () => {
    const before = await engine.status('prod');
    const preview = await engine.preview('scale');
    const md = formatPreviewMarkdown(preview);
    expect(previewHasChanges(preview)).toBe(true);
    expect(md).toContain('#### Environment `prod`');
    expect(md).toMatch(/\| `shop` \| update \| [0-9a-f]{7} → [0-9a-f]{7} \|/);
    expect(md).toContain(`update Deployment/${namespace}/shop`);
    expect(md).toContain('spec.replicas: 1 → 3');
    expect(md).toContain(`create Secret/${namespace}/shop-db`);
    expect(md).not.toContain(password);
    expect(md).not.toContain(Buffer.from(password).toString('base64'));
    expect(JSON.stringify(preview)).not.toContain(password);

    expect(kubectl('get', 'deployment', 'shop', '-n', namespace, '-o', 'jsonpath={.spec.replicas}')).toBe('1');
    expect(kubectl('get', 'secrets', '-n', namespace, '-o', 'name')).not.toContain('shop-db');
    const after = await engine.status('prod');
    expect(after.environments[0].revision).toBe(before.environments[0].revision);
    expect(after.environments[0].apps.find((a) => a.name === 'shop')!.sync).toBe('Synced');
  });
});
