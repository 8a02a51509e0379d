import { rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Engine } from '../../engine/engine.js';
import { EventBus, type Stamped } from '../../core/events.js';
import { silentLogger } from '../../log.js';
import { Store } from '../../store/store.js';
import type { ChildProcess } from 'node:child_process';
import { commitAll, freePort, getJson, gitInit, startKeelson, stopProcess, tempDir, waitFor, writeTree } from '../../../test/helpers.js';
import { deploymentYaml, kubectl, kubectlWithInput, kubernetesSuite, uniqueNamespace } from '../../../test/k8s.js';
import { KubernetesTarget } from './kubernetes-target.js';
import { withOwnership, type KObject } from './objects.js';

/**
 * Engines that take an environment over from another engine (a claim or a shard moved, a replica with a new state
 * directory) recover the inventory from the live objects labelled for it: engine A applies, stops; engine B, with an
 * empty state directory, takes the environment and a commit that removes an app and an object is pruned by B, with no
 * other object written. Then A comes back on its old, outdated state and prunes what B added and a commit removes.
 */
kubernetesSuite('kubernetes: inventory recovered from live objects when an engine takes an environment over', () => {
  const tmp = tempDir('keelson-k8s-adopt-');
  const ops = join(tmp.dir, 'ops');
  const namespace = uniqueNamespace('k-adopt');
  const env = namespace;
  const log = silentLogger();
  type Booted = { store: Store; bus: EventBus; events: Stamped[]; target: KubernetesTarget; engine: Engine };
  const running: Booted[] = [];

  const cm = (name: string, data = 'a: b') => `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: ${name} }\ndata: { ${data} }\n`;
  /** postSync hook calls of app `api` (its `spec.hooks`): a delivery hook runs on a sync that deploys it, never on one that finds it in sync. */
  let hookCalls = 0;
  const hookServer = createServer((_req, res) => {
    hookCalls++;
    res.end('ok');
  });
  const hookUrl = () => `http://127.0.0.1:${(hookServer.address() as AddressInfo).port}/hook`;
  const app = (name: string) =>
    `apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata: { name: ${name} }\nspec:\n  version: "1"\n  manifests: ../manifests/${name}\n  rollout: { progressDeadlineSeconds: 60 }\n${name === 'api' ? `  hooks: { postSync: [{ http: { url: "${hookUrl()}" } }] }\n` : ''}---\n`;
  const envYaml = (apps: string[]) =>
    `apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: ${env} }\nspec:\n  target: { kubernetes: { namespace: ${namespace} } }\n  apps:\n${apps.map((a) => `    ${a}: {}\n`).join('')}`;

  const boot = (stateName: string): Booted => {
    const store = new Store(join(tmp.dir, stateName));
    const bus = new EventBus();
    const events: Stamped[] = [];
    bus.subscribe((e) => events.push(e));
    let engine: Engine | undefined;
    const target = new KubernetesTarget({ env, spec: { namespace }, store, bus, log, requeue: (e) => engine?.requeue(e) });
    engine = new Engine({ repo: ops, stateDir: join(tmp.dir, stateName), log, store, bus, target, pollMs: 600_000 });
    const b = { store, bus, events, target, engine };
    running.push(b);
    return b;
  };
  const shutdown = async (b: Booted) => {
    await b.engine.stop();
    b.store.close();
    running.splice(running.indexOf(b), 1);
  };
  const syncedAt = (b: Booted, revision: string) => waitFor(`sync of ${revision.slice(0, 7)}`, () => b.events.find((e) => e.type === 'sync.completed' && e.env === env && e.revision === revision), 120_000);
  const commit = (message: string) => commitAll(ops, message);
  /** resourceVersion of every ConfigMap and Deployment of the namespace: a write changes it. */
  const versions = () =>
    Object.fromEntries(
      kubectl('-n', namespace, 'get', 'configmap,deployment', '-l', `keelson.dev/env=${env}`, '-o', 'jsonpath={range .items[*]}{.kind}/{.metadata.name}={.metadata.resourceVersion}{"\\n"}{end}')
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split('=') as [string, string]),
    );
  const appsOf = async (b: Booted) => Object.fromEntries((await b.engine.status(env)).environments[0].apps.map((a) => [a.name, a.sync]));

  let first = '';
  beforeAll(async () => {
    await new Promise<void>((resolve) => hookServer.listen(0, '127.0.0.1', resolve));
    writeTree(ops, {
      'apps/apps.yaml': app('web') + app('api') + app('gone'),
      'manifests/web/deploy.yaml': deploymentYaml('web', { image: 'registry.example/web:1', replicas: 1 }),
      'manifests/web/config.yaml': cm('web-config'),
      'manifests/web/extra.yaml': cm('web-extra'),
      'manifests/api/config.yaml': cm('api-config'),
      'manifests/gone/config.yaml': cm('gone-config'),
      'envs/env.yaml': envYaml(['web', 'api', 'gone']),
    });
    gitInit(ops);
    first = commit('three apps');
  });
  afterAll(async () => {
    for (const b of [...running]) await shutdown(b).catch(() => undefined);
    hookServer.close();
    kubectl('delete', 'namespace', namespace, '--wait=false', '--ignore-not-found');
    tmp.cleanup();
  }, 60_000);

  it('B, with an empty state directory, adopts A’s objects and prunes an app and an object a commit removes, writing nothing else', async () => {
    const a = boot('state-a');
    await a.engine.start();
    expect(await syncedAt(a, first)).toMatchObject({ result: 'Succeeded' });
    expect(await appsOf(a)).toEqual({ web: 'Synced', api: 'Synced', gone: 'Synced' });
    expect(hookCalls).toBe(1);
    await shutdown(a);
    const before = versions();
    expect(Object.keys(before).sort()).toEqual(['ConfigMap/api-config', 'ConfigMap/gone-config', 'ConfigMap/web-config', 'ConfigMap/web-extra', 'Deployment/web']);

    // Removed while no engine runs: the app `gone`, and web's ConfigMap web-extra.
    writeTree(ops, { 'apps/apps.yaml': app('web') + app('api'), 'envs/env.yaml': envYaml(['web', 'api']) });
    rmSync(join(ops, 'manifests/web/extra.yaml'));
    rmSync(join(ops, 'manifests/gone'), { recursive: true });
    const removed = commit('gone and web-extra removed');

    const b = boot('state-b');
    // Before B's first sync: the target knows the apps from their live objects, and says so.
    const adopted = await b.target.observe(env);
    expect(adopted.map((l) => [l.name, l.objects?.map((o) => o.key)])).toEqual([
      ['api', [`ConfigMap/${namespace}/api-config`]],
      ['gone', [`ConfigMap/${namespace}/gone-config`]],
      ['web', [`ConfigMap/${namespace}/web-config`, `ConfigMap/${namespace}/web-extra`, `Deployment/${namespace}/web`]],
    ]);
    for (const l of adopted) expect(l.adopted).toMatch(/^taken over: \d live objects? labelled for this app adopted as its inventory \(this engine had no record of it/);

    await b.engine.start();
    const sync = await syncedAt(b, removed);
    expect(sync).toMatchObject({ result: 'Succeeded' });
    const history = b.store.history({ env })[0];
    expect(Object.fromEntries(history.changes.map((c) => [c.app, c.action]))).toEqual({ web: 'configured', api: 'configured', gone: 'deleted' });
    expect(history.changes.find((c) => c.app === 'api')?.message).toBe('1 objects unchanged (adopted from the live objects)');
    expect(hookCalls).toBe(1); // api was in sync: B ran none of its delivery hooks
    expect(history.changes.find((c) => c.app === 'web')?.message).toBe('2 unchanged, 1 deleted');
    const after = versions();
    expect(after).toEqual({ 'ConfigMap/api-config': before['ConfigMap/api-config'], 'ConfigMap/web-config': before['ConfigMap/web-config'], 'Deployment/web': before['Deployment/web'] });
    expect(await appsOf(b)).toEqual({ web: 'Synced', api: 'Synced' });
    expect((await b.target.observe(env)).map((l) => [l.name, l.adopted])).toEqual([
      ['api', undefined],
      ['web', undefined],
    ]);

    // B adds an object to api; then B stops and A comes back on its old state, which does not know that object.
    writeTree(ops, { 'manifests/api/more.yaml': cm('api-more') });
    const more = commit('api-more');
    await b.engine.refresh();
    await syncedAt(b, more);
    expect(hookCalls).toBe(2); // a real change of api: its postSync ran
    expect(versions()['ConfigMap/api-more']).toBeDefined();
    await shutdown(b);

    rmSync(join(ops, 'manifests/api/more.yaml'));
    writeTree(ops, { 'manifests/api/config.yaml': cm('api-config', 'a: c') });
    const changed = commit('api-more removed, api-config changed');
    const beforeA = versions();
    const a2 = boot('state-a');
    await a2.engine.start();
    expect(await syncedAt(a2, changed)).toMatchObject({ result: 'Succeeded' });
    const afterA = versions();
    expect(afterA['ConfigMap/api-more']).toBeUndefined();
    expect(afterA['ConfigMap/api-config']).not.toBe(beforeA['ConfigMap/api-config']);
    expect(afterA['ConfigMap/web-config']).toBe(beforeA['ConfigMap/web-config']);
    expect(afterA['Deployment/web']).toBe(beforeA['Deployment/web']);
    expect(await appsOf(a2)).toEqual({ web: 'Synced', api: 'Synced' });
  }, 300_000);

  it('a target checks its records against live once per hold of the claim: not while standing by, not on every observe', async () => {
    const ns = uniqueNamespace('k-adopt-hold');
    kubectl('create', 'namespace', ns);
    const store = new Store(join(tmp.dir, 'state-hold'));
    let holding = false;
    let hold = {};
    const target = new KubernetesTarget({ env: ns, spec: { namespace: ns }, store, bus: new EventBus(), log, requeue: () => undefined, mayWrite: () => holding, holdOf: () => hold });
    // An object another engine applied: Keelson's labels and applied hash.
    const other = (name: string, app: string) =>
      kubectlWithInput(JSON.stringify(withOwnership({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: ns }, data: { a: 'b' } } as KObject, ns, app)), 'apply', '-f', '-');
    try {
      other('one', 'x');
      expect(await target.observe(ns)).toEqual([]); // standing by: not this engine's business yet
      holding = true;
      expect((await target.observe(ns)).map((l) => [l.name, !!l.adopted])).toEqual([['x', true]]);
      other('two', 'y');
      expect((await target.observe(ns)).map((l) => l.name)).toEqual(['x']); // the same hold: no new listing
      hold = {}; // lost and taken again
      expect((await target.observe(ns)).map((l) => l.name)).toEqual(['x', 'y']);
    } finally {
      await target.close();
      store.close();
      kubectl('delete', 'namespace', ns, '--wait=false', '--ignore-not-found');
    }
  }, 120_000);

  it('two `keelson up` on one environment: the holder is killed, a commit removes an object, the standby takes over and prunes it', async () => {
    const ns = uniqueNamespace('k-adopt-up');
    const repo = join(tmp.dir, 'ops-up');
    writeTree(repo, {
      'apps/web.yaml': app('web'),
      'manifests/web/config.yaml': cm('web-config'),
      'manifests/web/extra.yaml': cm('web-extra'),
      'envs/env.yaml': `apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: prod }\nspec:\n  target: { kubernetes: { namespace: ${ns} } }\n  apps: { web: {} }\n`,
    });
    gitInit(repo);
    commitAll(repo, 'web');
    const engines: { child: ChildProcess; url: string }[] = [];
    const up = async (name: string) => {
      const port = await freePort();
      const child = startKeelson(['--repo', repo, '--state-dir', join(tmp.dir, `up-${name}`), '--claims-dir', join(tmp.dir, 'claims'), '--listen', `127.0.0.1:${port}`, '--poll', '1s'], join(tmp.dir, `up-${name}.log`));
      const e = { child, url: `http://127.0.0.1:${port}` };
      engines.push(e);
      return e;
    };
    const prod = async (e: { url: string }) => (await getJson(`${e.url}/api/v1/status?env=prod`).catch(() => undefined))?.environments?.[0];
    const rv = (name: string) => kubectl('-n', ns, 'get', 'configmap', name, '--ignore-not-found', '-o', 'jsonpath={.metadata.resourceVersion}');
    try {
      const a = await up('a');
      await waitFor('a runs prod', async () => (await prod(a))?.apps?.[0]?.sync === 'Synced', 120_000);
      const b = await up('b');
      await waitFor('b stands by', async () => (await prod(b))?.claim?.state === 'Standby', 60_000);
      const config = rv('web-config');
      // kill -9: the claim stays until it expires, and the commit lands meanwhile, so b never applies the old revision.
      a.child.kill('SIGKILL');
      rmSync(join(repo, 'manifests/web/extra.yaml'));
      commitAll(repo, 'web-extra removed');
      await waitFor('b runs prod', async () => (await prod(b))?.claim?.state === 'Active', 90_000);
      await waitFor('web-extra pruned by b', () => rv('web-extra') === '', 120_000);
      expect(rv('web-config')).toBe(config);
      await waitFor('web Synced on b', async () => (await prod(b))?.apps?.[0]?.sync === 'Synced', 60_000);
    } finally {
      for (const e of engines) await stopProcess(e.child);
      kubectl('delete', 'namespace', ns, '--wait=false', '--ignore-not-found');
    }
  }, 300_000);
});
