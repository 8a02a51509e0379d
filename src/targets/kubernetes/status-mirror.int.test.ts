import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Engine } from '../../engine/engine.js';
import { EventBus, type Stamped } from '../../core/events.js';
import { createLogger } from '../../log.js';
import { Store } from '../../store/store.js';
import { commitAll, gitInit, root, tempDir, waitFor, writeTree } from '../../../test/helpers.js';
import { deploymentYaml, kubectl, kubernetesSuite, uniqueNamespace } from '../../../test/k8s.js';
import { claimBackends } from '../../claims/backends.js';
import { ClaimKeeper } from '../../claims/keeper.js';
import { createTargetRegistry } from '../default-targets.js';
import { LocalTarget } from '../local/local-target.js';
import { StatusMirror } from './status-mirror.js';

/**
 * `kubectl get kenv` on the real control plane: two engines on one Kubernetes environment, each with its status
 * mirror. Without the CRD the sync succeeds and the engine says once how to install it; with it, the claim holder's
 * KeelsonEnvironment shows the app, its version, Synced/Healthy, and follows each commit; the standby never writes,
 * until it takes the claim over.
 */
kubernetesSuite('environment status as a KeelsonEnvironment', () => {
  const tmp = tempDir('keelson-k8s-kenv-');
  const ops = join(tmp.dir, 'ops');
  const namespace = uniqueNamespace('k-kenv');
  // The shipped CRD under a group of this run's own: other suites may install the real one on the shared cluster at
  // any time, and this suite needs a cluster where its resource is first missing, then installed.
  const group = `${uniqueNamespace('kenv')}.test.keelson.dev`;
  const resource = `keelsonenvironments.${group}`;
  const crd = join(tmp.dir, 'crd.yaml');
  writeFileSync(
    crd,
    readFileSync(join(root, 'deploy', 'kubernetes', 'keelsonenvironment-crd.yaml'), 'utf8')
      .replace('name: keelsonenvironments.keelson.dev', `name: ${resource}`)
      .replace('group: keelson.dev', `group: ${group}`)
      .replace(/\n\s*shortNames: \[kenv\]/, ''),
  );
  const timings = { durationMs: 6_000, renewMs: 1_000, retryMs: 500, marginMs: 1_500 };
  type Booted = { engine: Engine; claims: ClaimKeeper; store: Store; local: LocalTarget; mirror: StatusMirror; events: Stamped[]; logs: string[] };
  const booted: Booted[] = [];

  const boot = (name: string): Booted => {
    const state = join(tmp.dir, `state-${name}`);
    const logs: string[] = [];
    const log = createLogger({ name, format: 'json', out: { write: (line: string) => logs.push(line) } });
    const bus = new EventBus();
    const events: Stamped[] = [];
    bus.subscribe((e) => events.push(e));
    const store = new Store(state);
    let engine: Engine | undefined;
    let mirror: StatusMirror | undefined;
    const local = new LocalTarget({ stateDir: state, store, bus, log, requeue: () => undefined });
    const claims = new ClaimKeeper({ identity: `test/${name}`, backendFor: claimBackends({ claimsDir: join(tmp.dir, 'claims'), scope: () => ({ repo: ops, path: '' }), specOf: (env) => engine?.targetSpecOf(env) }), log, onAcquired: (env) => (engine?.requeue(env), mirror?.claimed(env)), ...timings });
    const targets = createTargetRegistry({ local, store, bus, log, requeue: (env) => engine?.requeue(env), specOf: (env) => engine?.targetSpecOf(env), mayWrite: (env) => claims.holds(env) });
    engine = new Engine({ repo: ops, stateDir: state, log, store, bus, target: targets, pollMs: 600_000, claims });
    const e = engine;
    mirror = new StatusMirror({ bus, log, status: async (env) => (await e.status(env)).environments[0], specOf: (env) => e.targetSpecOf(env), mayWrite: (env) => claims.holds(env), engine: claims.identity, debounceMs: 200, refreshMs: 1_000, apiVersion: `${group}/v1alpha1` });
    mirror.start();
    const b = { engine, claims, store, local, mirror, events, logs };
    booted.push(b);
    return b;
  };
  const files = (version: string) => ({
    'apps/shop.yaml': `apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata: { name: shop }\nspec:\n  version: "${version}"\n  manifests: shop\n`,
    'apps/shop/deployment.yaml': deploymentYaml('shop', { image: `registry.example/shop:${version}`, replicas: 1 }),
    'envs/prod.yaml': `apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: prod }\nspec:\n  target: { kubernetes: { namespace: ${namespace} } }\n  apps: { shop: {} }\n`,
  });
  const kenv = (): any => {
    try {
      return JSON.parse(kubectl('get', resource, 'prod', '-n', namespace, '-o', 'json'));
    } catch {
      return undefined;
    }
  };
  const shows = (version: string) => () => {
    const k = kenv();
    const s = k?.status;
    return s?.sync === 'Synced' && s.health === 'Healthy' && s.apps?.[0]?.version === version && s.apps[0].sync === 'Synced' && s.apps[0].health === 'Healthy' && k;
  };

  beforeAll(() => {
    // This suite installs its CRD itself, after checking that a sync without it succeeds.
    writeTree(ops, files('1'));
    gitInit(ops);
    commitAll(ops, 'shop 1');
  }, 60_000);

  afterAll(async () => {
    for (const b of booted) {
      await b.mirror.stop();
      await b.engine.stop();
      await b.local.supervisor.stopAll();
      await b.local.proxy.stop();
      b.store.close();
    }
    kubectl('delete', 'namespace', namespace, '--wait=false', '--ignore-not-found');
    kubectl('delete', '-f', crd, '--ignore-not-found', '--wait=false');
    tmp.cleanup();
  }, 60_000);

  it('without the CRD the sync succeeds, and the engine says once how to install it', async () => {
    const a = boot('a');
    await a.engine.start();
    const done = await waitFor('shop 1 synced', () => a.events.find((e) => e.type === 'sync.completed' && e.env === 'prod'), 90_000);
    expect(done).toMatchObject({ result: 'Succeeded' });
    await waitFor('the CRD hint', () => a.logs.some((l) => l.includes('KeelsonEnvironment CRD is not installed')), 20_000);
    const hints = a.logs.filter((l) => l.includes('KeelsonEnvironment CRD is not installed'));
    expect(hints).toHaveLength(1);
    expect(hints[0]).toContain('kubectl apply -f deploy/kubernetes/keelsonenvironment-crd.yaml');
  }, 120_000);

  it('with the CRD, the claim holder mirrors the status, it follows each commit, and the standby never writes', async () => {
    const [a] = booted;
    kubectl('apply', '-f', crd);
    kubectl('wait', '--for=condition=Established', '--timeout=30s', `crd/${resource}`);

    writeTree(ops, files('2'));
    const rev2 = commitAll(ops, 'shop 2');
    await a.engine.refresh();
    const k2 = await waitFor('kenv shows shop 2', shows('2'), 60_000);
    expect(k2.spec).toEqual({});
    expect(k2.status).toMatchObject({ revision: rev2, shortRevision: rev2.slice(0, 12), appsReady: '1/1', engine: 'test/a', apps: [{ name: 'shop', version: '2', sync: 'Synced', health: 'Healthy' }] });
    expect(Date.parse(k2.status.observedAt)).not.toBeNaN();
    // The printer columns, as `kubectl get kenv` shows them.
    const table = kubectl('get', resource, '-n', namespace);
    expect(table.split('\n')[0]).toMatch(/^NAME\s+REVISION\s+SYNC\s+HEALTH\s+APPS\s+AGE$/);
    expect(table.split('\n')[1]).toMatch(new RegExp(`^prod\\s+${rev2.slice(0, 12)}\\s+Synced\\s+Healthy\\s+1/1\\s+\\S+$`));

    // A standby engine on the same environment: it never writes, even when told to.
    const b = boot('b');
    await b.engine.start();
    await waitFor('b stands by', async () => (await b.engine.status('prod')).environments[0]?.claim?.state === 'Standby', 30_000);
    await b.mirror.flush('prod');

    writeTree(ops, files('3'));
    const rev3 = commitAll(ops, 'shop 3');
    await Promise.all([a.engine.refresh(), b.engine.refresh()]);
    const k3 = await waitFor('kenv follows to shop 3', shows('3'), 60_000);
    expect(k3.status).toMatchObject({ revision: rev3, engine: 'test/a' });
    // Unchanged content is not written again (observedAt is when it last changed). The first flush may still write
    // what the throttle held back (the sync's end, recorded after the app was Healthy); a second writes nothing.
    await a.mirror.flush('prod');
    const settled = kenv().metadata.resourceVersion;
    await a.mirror.flush('prod');
    expect(kenv().metadata.resourceVersion).toBe(settled);
    await b.mirror.flush('prod');
    const managed = JSON.parse(kubectl('get', resource, 'prod', '-n', namespace, '-o', 'json', '--show-managed-fields')).metadata.managedFields;
    expect(new Set(managed.map((f: { manager: string }) => f.manager))).toEqual(new Set(['keelson-status']));
    expect(kenv().status.engine).toBe('test/a');

    // a stops (releasing its claim): b takes over the environment, and with it the status.
    await a.mirror.stop();
    await a.engine.stop();
    const kb = await waitFor('b writes the status', () => {
      const k = shows('3')();
      return k?.status.engine === 'test/b' && k;
    }, 60_000);
    expect(kb.status.revision).toBe(rev3);
  }, 180_000);
});
