import { afterAll, expect, it } from 'vitest';
import { waitFor } from '../../test/helpers.js';
import { kubectl, kubernetesSuite, uniqueNamespace } from '../../test/k8s.js';
import { silentLogger, createLogger } from '../log.js';
import { connect, type Cluster } from '../targets/kubernetes/client.js';
import { ClaimKeeper } from './keeper.js';
import { LeaseClaims } from './lease-claims.js';
import { LeaseMembers } from './lease-members.js';
import { Membership } from './members.js';
import { assign } from './rendezvous.js';

/**
 * Three engines share six Kubernetes environments on the real control plane: member Leases announce them, each claims
 * the environments assigned to it, so each runs two and every environment is run by exactly one. One crashes (stops
 * renewing, releases nothing): its environments are taken by the others after expiry. It comes back and gets its share
 * back, handed over by the others. Throughout, no environment is ever held by two engines at once.
 */
kubernetesSuite('sharding: environments spread over engines (member Leases + claim Leases)', () => {
  const namespace = uniqueNamespace('k-shard');
  const envs = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot'];
  // Shortened for the test (defaults: 15 s duration, 5 s renew, 2 s retry, 3 s margin).
  const timings = { durationMs: 3_000, renewMs: 1_000, retryMs: 500, marginMs: 1_000 };
  const clusters: Cluster[] = [];
  type Booted = { id: string; keeper: ClaimKeeper; membership: Membership };
  const live = new Map<string, Booted>();
  const violations: string[] = [];

  const boot = async (id: string): Promise<Booted> => {
    const cluster = connect({});
    clusters.push(cluster);
    const log = process.env.DEBUG_CLAIMS ? createLogger({ name: id }) : silentLogger();
    const membership = new Membership({ id, backend: new LeaseMembers(cluster.api, namespace), log, ...timings });
    const keeper: ClaimKeeper = new ClaimKeeper({
      identity: id,
      backendFor: (env) => new LeaseClaims(cluster.api, namespace, env),
      log,
      membership,
      environments: () => envs,
      onAcquired: (env) => {
        // The invariant: when an engine starts running an environment, no other engine may still write to it.
        for (const other of live.values()) if (other.keeper !== keeper && other.keeper.holds(env)) violations.push(`${id} acquired ${env} while ${other.id} held it`);
      },
      ...timings,
    });
    const b = { id, keeper, membership };
    live.set(id, b);
    await membership.start();
    for (const env of envs) keeper.track(env);
    return b;
  };
  const holders = () => new Map(envs.map((env) => [env, [...live.values()].filter((b) => b.keeper.holds(env)).map((b) => b.id)]));
  const balanced = (ids: string[]) => () => {
    const h = holders();
    const want = assign(envs, ids);
    return envs.every((env) => h.get(env)!.length === 1 && h.get(env)![0] === want.get(env)) && h;
  };
  const counts = (h: Map<string, string[]>) => {
    const n: Record<string, number> = {};
    for (const [, [id]] of h) n[id!] = (n[id!] ?? 0) + 1;
    return n;
  };

  afterAll(async () => {
    for (const b of live.values()) {
      await b.keeper.stop();
      await b.membership.stop();
    }
    for (const c of clusters) c.release();
    kubectl('delete', 'namespace', namespace, '--wait=false', '--ignore-not-found');
  });

  it('each of 3 engines runs 2 of 6 environments; a crashed one’s are taken over after expiry; it gets its share back when it returns', async () => {
    kubectl('create', 'namespace', namespace);
    const ids = ['test/a', 'test/b', 'test/c'];
    for (const id of ids) await boot(id);
    const h = await waitFor('6 environments spread 2/2/2', balanced(ids), 60_000);
    expect(counts(h)).toEqual({ 'test/a': 2, 'test/b': 2, 'test/c': 2 });
    expect(kubectl('get', 'lease', '-n', namespace, '-l', 'keelson.dev/member=true', '-o', 'jsonpath={.items[*].spec.holderIdentity}').split(' ').sort()).toEqual(ids);
    for (const b of live.values()) expect(b.keeper.engineView()).toEqual({ id: b.id, members: 3, assigned: [...assign(envs, ids)].filter(([, m]) => m === b.id).map(([e]) => e).sort() });

    // c crashes: it stops renewing its member Lease and its claims, and releases nothing.
    const c = live.get('test/c')!;
    const ofC = envs.filter((e) => c.keeper.holds(e));
    await c.membership.stop({ leave: false });
    await c.keeper.stop({ release: false });
    live.delete('test/c');
    const killedAt = performance.now();
    const after = await waitFor('a and b run all 6 (3/3)', balanced(['test/a', 'test/b']), 60_000);
    const failoverMs = performance.now() - killedAt;
    expect(counts(after)).toEqual({ 'test/a': 3, 'test/b': 3 });
    expect(ofC.every((e) => after.get(e)![0] !== 'test/c')).toBe(true);
    for (const e of ofC) expect(kubectl('get', 'lease', `keelson-env-${e}`, '-n', namespace, '-o', 'jsonpath={.spec.holderIdentity}')).not.toBe('test/c');

    // c comes back (same identity, a restarted engine): a and b hand its environments over between renewals.
    await boot('test/c');
    const back = await waitFor('2/2/2 again', balanced(ids), 60_000);
    expect(counts(back)).toEqual({ 'test/a': 2, 'test/b': 2, 'test/c': 2 });
    expect(violations).toEqual([]);
    console.log(`sharding: failover of ${ofC.length} environments after a crash took ${Math.round(failoverMs)} ms (claim duration ${timings.durationMs} ms)`);
  }, 240_000);

  it('a clean stop withdraws the member Lease and releases the claims: the others take its environments at once', async () => {
    const b = live.get('test/b')!;
    const ofB = envs.filter((e) => b.keeper.holds(e));
    await b.keeper.stop();
    await b.membership.stop();
    live.delete('test/b');
    const h = await waitFor('a and c run all 6', balanced(['test/a', 'test/c']), 60_000);
    expect(counts(h)).toEqual({ 'test/a': 3, 'test/c': 3 });
    expect(ofB.length).toBe(2);
    expect(kubectl('get', 'lease', '-n', namespace, '-l', 'keelson.dev/member=true', '-o', 'jsonpath={.items[*].spec.holderIdentity}').split(' ').sort()).toEqual(['test/a', 'test/c']);
    expect(violations).toEqual([]);
  }, 120_000);
});
