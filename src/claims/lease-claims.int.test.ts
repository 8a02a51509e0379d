import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Engine } from '../engine/engine.js';
import { EventBus } from '../core/events.js';
import { createLogger, silentLogger } from '../log.js';
import { Store } from '../store/store.js';
import { commitAll, gitInit, tempDir, waitFor, writeTree } from '../../test/helpers.js';
import { deploymentYaml, kubectl, kubernetesSuite, uniqueNamespace } from '../../test/k8s.js';
import { createTargetRegistry } from '../targets/default-targets.js';
import { LocalTarget } from '../targets/local/local-target.js';
import { claimBackends } from './backends.js';
import { ClaimKeeper } from './keeper.js';

/**
 * Two engines on one Kubernetes environment against the real control plane: the claim is a Lease in the environment's
 * namespace. One runs it, the other stands by; the first crashes (stops renewing without releasing) and the second
 * takes over once the Lease expired; a commit made during the hand-over is applied exactly once.
 */
kubernetesSuite('claims of Kubernetes environments (Lease)', () => {
  const tmp = tempDir('keelson-k8s-claims-');
  const ops = join(tmp.dir, 'ops');
  const namespace = uniqueNamespace('k-claims');
  // Shortened for the test (defaults: 15 s duration, 5 s renew, 2 s retry).
  const timings = { durationMs: 3_000, renewMs: 1_000, retryMs: 500, marginMs: 1_000 };
  type Booted = { engine: Engine; claims: ClaimKeeper; store: Store; local: LocalTarget; bus: EventBus; changed: { revision: string; action: string }[]; drift: string[] };
  const booted: Booted[] = [];

  const boot = (name: string): Booted => {
    const state = join(tmp.dir, `state-${name}`);
    const log = process.env.DEBUG_CLAIMS ? createLogger({ name }) : silentLogger();
    const bus = new EventBus();
    const store = new Store(state);
    let engine: Engine | undefined;
    const local = new LocalTarget({ stateDir: state, store, bus, log, requeue: () => undefined });
    const claims = new ClaimKeeper({ identity: `test/${name}`, backendFor: claimBackends({ claimsDir: join(tmp.dir, 'claims'), scope: () => ({ repo: ops, path: '' }), specOf: (env) => engine?.targetSpecOf(env) }), log, onAcquired: (env) => engine?.requeue(env), ...timings });
    const targets = createTargetRegistry({ local, store, bus, log, requeue: (env) => engine?.requeue(env), specOf: (env) => engine?.targetSpecOf(env), mayWrite: (env) => claims.holds(env) });
    engine = new Engine({ repo: ops, stateDir: state, log, store, bus, target: targets, pollMs: 600_000, claims });
    const changed: Booted['changed'] = [];
    const drift: string[] = [];
    bus.subscribe((e: any) => {
      if (e.type === 'drift.detected') drift.push(e.message);
      if (e.type === 'app.changed' && e.app === 'shop') changed.push({ revision: e.revision, action: e.action });
    });
    const b = { engine, claims, store, local, bus, changed, drift };
    booted.push(b);
    return b;
  };
  const prod = async (b: Booted) => (await b.engine.status('prod')).environments[0];
  const lease = (path: string) => kubectl('get', 'lease', 'keelson-env-prod', '-n', namespace, '-o', `jsonpath=${path}`);

  beforeAll(() => {
    writeTree(ops, {
      'apps/shop.yaml': 'apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata: { name: shop }\nspec:\n  manifests: shop\n',
      'apps/shop/deployment.yaml': deploymentYaml('shop', { image: 'registry.example/shop:1', replicas: 1 }),
      'envs/prod.yaml': `apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: prod }\nspec:\n  target: { kubernetes: { namespace: ${namespace} } }\n  apps: { shop: {} }\n`,
    });
    gitInit(ops);
    commitAll(ops, 'shop 1');
  });

  afterAll(async () => {
    for (const b of booted) {
      await b.engine.stop();
      await b.local.supervisor.stopAll();
      await b.local.proxy.stop();
      b.store.close();
    }
    kubectl('delete', 'namespace', namespace, '--wait=false', '--ignore-not-found');
    tmp.cleanup();
  });

  it('one engine holds the Lease and runs the environment; the other stands by, and takes over after a crash; a commit made during the hand-over is applied once', async () => {
    const a = boot('a');
    await a.engine.start();
    await waitFor('a runs prod', async () => {
      const env = await prod(a);
      return env?.claim?.state === 'Active' && env.apps[0]?.sync === 'Synced';
    }, 90_000);
    expect(lease('{.spec.holderIdentity} {.spec.leaseDurationSeconds}')).toBe('test/a 3');

    const b = boot('b');
    await b.engine.start();
    const standby = await waitFor('b stands by', async () => {
      const env = await prod(b);
      return env?.claim?.state === 'Standby' && env;
    }, 30_000);
    expect(standby.claim!.holder).toBe('test/a');
    expect(standby.claim!.where).toBe(`Lease ${namespace}/keelson-env-prod`);
    expect(standby.claim!.message).toMatch(/^Standby: claimed by test\/a \(pid \d+\) since \S+, expires in \d+s/);
    expect(b.changed).toEqual([]);
    expect(b.store.history({ env: 'prod' })).toEqual([]);
    const generation = kubectl('get', 'deployment', 'shop', '-n', namespace, '-o', 'jsonpath={.metadata.generation}');

    // a crashes: it stops renewing and never releases. A commit lands during the hand-over; both engines fetch it.
    await a.claims.stop({ release: false });
    writeTree(ops, { 'apps/shop/deployment.yaml': deploymentYaml('shop', { image: 'registry.example/shop:2', replicas: 1 }) });
    const revision = commitAll(ops, 'shop 2');
    await Promise.all([a.engine.refresh(), b.engine.refresh()]);

    await waitFor('b takes over and applies shop 2', async () => {
      const env = await prod(b);
      return env?.claim?.state === 'Active' && env.apps[0]?.sync === 'Synced' && b.store.history({ env: 'prod' }).some((s) => s.revision === revision);
    }, 60_000);
    expect(lease('{.spec.holderIdentity} {.spec.leaseTransitions}')).toBe('test/b 1');
    expect(kubectl('get', 'deployment', 'shop', '-n', namespace, '-o', 'jsonpath={.spec.template.spec.containers[0].image}')).toBe('registry.example/shop:2');
    // Exactly once: one apply of the new revision among both engines, one spec change of the Deployment.
    expect([...a.changed, ...b.changed].filter((c) => c.revision === revision)).toEqual([expect.objectContaining({ revision })]);
    expect(b.changed).toHaveLength(1);
    expect(a.store.history({ env: 'prod' }).filter((s) => s.revision === revision)).toEqual([]);
    expect(b.store.history({ env: 'prod' }).filter((s) => s.revision === revision)).toHaveLength(1);
    expect(Number(kubectl('get', 'deployment', 'shop', '-n', namespace, '-o', 'jsonpath={.metadata.generation}'))).toBe(Number(generation) + 1);
    // a, still alive and watching but without its claim, writes nothing more: drift is b's to heal.
    a.drift.length = 0;
    kubectl('scale', 'deployment', 'shop', '-n', namespace, '--replicas=3');
    await waitFor('b heals the drift', () => b.drift.length > 0 && kubectl('get', 'deployment', 'shop', '-n', namespace, '-o', 'jsonpath={.spec.replicas}') === '1', 30_000);
    expect(a.drift).toEqual([]);
    expect((await prod(a))!.claim!.state).toBe('Unknown');
  }, 240_000);

  it('a clean stop releases the Lease: the standby takes over before it could expire', async () => {
    const [, b] = booted;
    const c = boot('c');
    await c.engine.start();
    await waitFor('c stands by', async () => (await prod(c))?.claim?.state === 'Standby', 30_000);
    await b.engine.stop();
    await waitFor('c takes over', async () => (await prod(c))?.claim?.state === 'Active', 30_000);
    expect(lease('{.spec.holderIdentity}')).toBe('test/c');
  }, 120_000);
});
