import { readdirSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../log.js';
import { tempDir, waitFor } from '../../test/helpers.js';
import { FileClaims } from './file-claims.js';
import { ClaimKeeper } from './keeper.js';
import { repoScope } from './backends.js';
import type { ClaimWrite } from './claim.js';

const fast = { durationMs: 2_000, renewMs: 400, retryMs: 200, marginMs: 500 };

describe('claims on the host (claim files)', () => {
  const cleanups: (() => void | Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  function keeper(dir: string, identity: string, timings: Partial<typeof fast> = fast, events: string[] = []): ClaimKeeper {
    const k = new ClaimKeeper({ identity, backendFor: () => new FileClaims(dir), log: silentLogger(), ...timings, onAcquired: (env) => events.push(`acquired ${env}`), onLost: (env) => events.push(`lost ${env}`) });
    cleanups.push(() => k.stop({ release: false }));
    return k;
  }

  function tmp(): string {
    const t = tempDir('keelson-claims-');
    cleanups.push(t.cleanup);
    return t.dir;
  }

  it('one engine holds an environment, a second stands by and takes over once the claim expires (the first died)', async () => {
    const dir = tmp();
    const a = keeper(dir, 'host/aaaa');
    a.track('dev');
    await waitFor('a holds dev', () => a.holds('dev'));
    const bEvents: string[] = [];
    const b = keeper(dir, 'host/bbbb', fast, bEvents);
    b.track('dev');
    const standby = await waitFor('b stands by', () => b.view('dev')?.state === 'Standby' && b.view('dev'));
    expect(standby.holder).toBe('host/aaaa');
    expect(standby.message).toMatch(/^Standby: claimed by host\/aaaa \(pid \d+\) since .*, expires in \d+s/);
    expect(b.holds('dev')).toBe(false);
    // Renewals keep it with a: b stays standby over several durations (12 renewals, 400 ms apart, of a 2 s claim).
    for (let i = 0; i < 12; i++) {
      const renewed = b.view('dev')!.expiresAt;
      await waitFor('b saw a renewal', () => b.view('dev')!.expiresAt !== renewed, 10_000);
    }
    expect(b.holds('dev')).toBe(false);
    expect(bEvents).toEqual([]);

    await a.stop({ release: false }); // a crash: no release
    expect(a.holds('dev')).toBe(false);
    await waitFor('b takes over', () => b.holds('dev'), 15_000);
    expect(bEvents).toEqual(['acquired dev']);
    expect(b.view('dev')!.state).toBe('Active');
    // One claim file: the newest generation, held by b, one transition.
    const files = readdirSync(dir).filter((f) => f.startsWith('default.dev@'));
    expect(files).toHaveLength(1);
    expect(JSON.parse(readFileSync(`${dir}/${files[0]}`, 'utf8'))).toMatchObject({ holder: 'host/bbbb', transitions: 1 });
  });

  it('a clean stop releases the claim: the standby takes over at once, long before the claim would expire', async () => {
    const dir = tmp();
    const slow = { ...fast, durationMs: 120_000, marginMs: 3_000 };
    const a = keeper(dir, 'host/aaaa', slow);
    a.track('dev');
    await waitFor('a holds dev', () => a.holds('dev'));
    const b = keeper(dir, 'host/bbbb', slow);
    b.track('dev');
    await waitFor('b stands by', () => b.view('dev')?.state === 'Standby');
    await a.stop({ release: true });
    await waitFor('b takes over', () => b.holds('dev'), 10_000);
  });

  it('the same engine restarted re-takes its own claim at once', async () => {
    const dir = tmp();
    const slow = { ...fast, durationMs: 120_000, marginMs: 3_000 };
    const a = keeper(dir, 'host/aaaa', slow);
    a.track('dev');
    await waitFor('a holds dev', () => a.holds('dev'));
    await a.stop({ release: false });
    const again = keeper(dir, 'host/aaaa', slow);
    again.track('dev');
    await waitFor('the restarted engine holds dev', () => again.holds('dev'), 10_000);
  });

  it('writes stop before the claim expires when renewals fail', async () => {
    const dir = tmp();
    let failing = false;
    const files = new FileClaims(dir);
    const flaky: FileClaims = Object.assign(Object.create(files) as FileClaims, {
      read: (env: string) => (failing ? Promise.reject(new Error('disk unreachable')) : files.read(env)),
    });
    const events: string[] = [];
    const a = new ClaimKeeper({ identity: 'host/aaaa', backendFor: () => flaky, log: silentLogger(), ...fast, onLost: (env) => events.push(`lost ${env}`) });
    cleanups.push(() => a.stop({ release: false }));
    a.track('dev');
    await waitFor('a holds dev', () => a.holds('dev'));
    failing = true;
    const signal = a.signal('dev');
    // The moment anyone else may take over: the last renewal that reached the disk, plus the duration.
    await waitFor('the claim expired', async () => {
      const r = (await files.read('dev'))!;
      return Date.now() > Date.parse(r.renewedAt) + r.durationMs;
    }, 10_000);
    // By then a has stopped writing, and its reconcile under way was told to stop.
    expect(a.holds('dev')).toBe(false);
    expect(signal.aborted).toBe(true);
    expect(events).toEqual(['lost dev']);
  });

  it('engines of two different ops repositories on one host both run their own `dev`', async () => {
    const dir = tmp();
    const scoped = (identity: string, scope: string) => {
      const k = new ClaimKeeper({ identity, backendFor: () => new FileClaims(dir, scope), log: silentLogger(), ...fast });
      cleanups.push(() => k.stop({ release: false }));
      return k;
    };
    const a = scoped('host/aaaa', repoScope({ repo: '/srv/shop-ops', path: '.' }));
    const b = scoped('host/bbbb', repoScope({ repo: '/srv/blog-ops', path: '.' }));
    a.track('dev');
    b.track('dev');
    await waitFor('both hold their dev', () => a.holds('dev') && b.holds('dev'));
  });

  it('of many engines taking over one expired claim at once, exactly one wins', async () => {
    const dir = tmp();
    const files = new FileClaims(dir);
    const old: ClaimWrite = { holder: 'host/dead', host: 'host', pid: 1, acquiredAt: new Date(0).toISOString(), renewedAt: new Date(0).toISOString(), durationMs: 1000, transitions: 0 };
    const first = await files.write('dev', undefined, old, 'take');
    expect(first?.version).toMatch(/^1\//);
    const current = (await files.read('dev'))!;
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => new FileClaims(dir).write('dev', current, { ...old, holder: `host/${i}`, renewedAt: new Date().toISOString() }, 'take')),
    );
    const winners = results.filter(Boolean);
    expect(winners).toHaveLength(1);
    expect((await files.read('dev'))!.holder).toBe(winners[0]!.holder);
    // A stale renewal by the dead holder no longer counts.
    expect(await files.write('dev', current, old, 'renew')).toBeUndefined();
  });
});
