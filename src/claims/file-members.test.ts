import { readdirSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../log.js';
import { tempDir, waitFor } from '../../test/helpers.js';
import { FileClaims } from './file-claims.js';
import { ClaimKeeper } from './keeper.js';
import { FileMembers, Membership } from './members.js';
import { assign } from './rendezvous.js';

const fast = { durationMs: 2_000, renewMs: 400, retryMs: 200, marginMs: 500 };
const envs = ['a1', 'b2', 'c3', 'd4'];

/** Sharding on one host: member files next to the claim files, real keepers, real files. */
describe('sharding on the host (member files)', () => {
  const cleanups: (() => void | Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  function engine(dir: string, id: string, held: string[][] = []) {
    const membership = new Membership({ id, backend: new FileMembers(dir, 'repo'), log: silentLogger(), ...fast });
    const keeper: ClaimKeeper = new ClaimKeeper({
      identity: id,
      backendFor: () => new FileClaims(dir, 'repo'),
      log: silentLogger(),
      membership,
      environments: () => envs,
      onAcquired: (env) => held.push([id, env]),
      ...fast,
    });
    cleanups.push(async () => {
      await keeper.stop({ release: false });
      await membership.stop({ leave: false });
    });
    return { id, keeper, membership, start: async () => (await membership.start(), envs.forEach((e) => keeper.track(e))) };
  }
  const runs = (engines: { id: string; keeper: ClaimKeeper }[], ids: string[]) => () => {
    const want = assign(envs, ids);
    return envs.every((env) => {
      const h = engines.filter((e) => e.keeper.holds(env)).map((e) => e.id);
      return h.length === 1 && h[0] === want.get(env);
    });
  };

  it('two engines split four environments 2/2; the first hands over what is assigned to the second when it joins, and takes everything back after the second crashed', async () => {
    const t = tempDir('keelson-members-');
    cleanups.push(t.cleanup);
    const x = engine(t.dir, 'host/x');
    const y = engine(t.dir, 'host/y');
    await x.start();
    await waitFor('x runs all 4 alone', () => envs.every((e) => x.keeper.holds(e)), 20_000);
    expect(x.keeper.engineView()).toEqual({ id: 'host/x', members: 1, assigned: envs });
    await y.start();
    await waitFor('2/2', runs([x, y], ['host/x', 'host/y']), 20_000);
    expect(x.membership.members()).toEqual(['host/x', 'host/y']);
    expect(readdirSync(t.dir).filter((n) => n.includes('.member.'))).toHaveLength(2);
    expect(x.keeper.engineView().assigned).toHaveLength(2);

    // y crashes: no renewals, nothing released or withdrawn; x notices and runs all four again.
    await y.keeper.stop({ release: false });
    await y.membership.stop({ leave: false });
    await waitFor('x runs all 4 again', () => envs.every((e) => x.keeper.holds(e)), 20_000);
    expect(x.membership.members()).toEqual(['host/x']);
  }, 60_000);

  it('a member that leaves cleanly removes its file', async () => {
    const t = tempDir('keelson-members-');
    cleanups.push(t.cleanup);
    const x = engine(t.dir, 'host/x');
    await x.membership.start();
    expect(readdirSync(t.dir).filter((n) => n.includes('.member.'))).toHaveLength(1);
    await x.membership.stop({ leave: true });
    expect(readdirSync(t.dir).filter((n) => n.includes('.member.'))).toEqual([]);
  });
});
