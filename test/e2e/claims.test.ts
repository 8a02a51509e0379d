import { type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commitAll, freePort, getJson, gitInit, runCli, startKeelson, stopProcess, tempDir, waitFor, writeTree } from '../helpers.js';
import { tickRepo } from '../engine-harness.js';

/**
 * Two `keelson up` processes on one ops repository and one host (different state dirs, one claims dir): one runs the
 * environment, the other stands by and says so; kill -9 the first and the second takes over once the claim expires
 * (default timings: 15 s duration, 2 s retry); a clean stop hands over at once.
 */
describe('several engines on one ops repository (local environments)', () => {
  const tmp = tempDir('keelson-claims-e2e-');
  const ops = join(tmp.dir, 'ops');
  const claimsDir = join(tmp.dir, 'claims');
  const engines: { name: string; child: ChildProcess; api: string; state: string }[] = [];

  const start = async (name: string) => {
    const port = await freePort();
    const state = join(tmp.dir, `state-${name}`);
    const child = startKeelson(['--repo', ops, '--state-dir', state, '--listen', `127.0.0.1:${port}`, '--poll', '1s', '--claims-dir', claimsDir], join(tmp.dir, `${name}.log`));
    const e = { name, child, api: `http://127.0.0.1:${port}`, state };
    engines.push(e);
    return e;
  };
  const dev = async (api: string) => (await getJson(`${api}/api/v1/status`)).environments.find((e: any) => e.name === 'dev');
  const claimFile = () => {
    const [f] = readdirSync(claimsDir).filter((n) => /^[0-9a-f]{12}\.dev@\d+\.json$/.test(n));
    return JSON.parse(readFileSync(join(claimsDir, f), 'utf8'));
  };

  beforeAll(() => {
    writeTree(ops, tickRepo);
    gitInit(ops);
    commitAll(ops, 'tick');
  });

  afterAll(async () => {
    for (const e of engines) {
      if (e.child.exitCode === null && e.child.signalCode === null) await stopProcess(e.child);
      runCli(['down', '--state-dir', e.state]);
    }
    tmp.cleanup();
  });

  it('the second engine stands by and says so; it takes over after kill -9 of the first; a clean stop hands over at once', async () => {
    const a = await start('a');
    const activeA = await waitFor('a runs dev', async () => {
      const env = await dev(a.api);
      return env?.claim?.state === 'Active' && env.apps[0]?.health === 'Healthy' && env;
    }, 60_000);
    expect(activeA.claim.holder).toBe(claimFile().holder);

    const b = await start('b');
    const standby = await waitFor('b stands by', async () => {
      const env = await dev(b.api);
      return env?.claim?.state === 'Standby' && env;
    }, 60_000);
    expect(standby.claim.holder).toBe(activeA.claim.holder);
    // b answers with a's apps (README: "The API on every engine"), saying whose they are.
    expect(standby.peer).toEqual({ engine: activeA.claim.holder, url: a.api, error: null });
    expect(standby.apps[0].instances.length).toBeGreaterThan(0);
    expect((await getJson(`${b.api}/api/v1/history?env=dev`)).syncs).toEqual((await getJson(`${a.api}/api/v1/history?env=dev`)).syncs);
    // b itself runs nothing of dev (its own answer, as to a forwarded request): no replica of tick, no sync of dev.
    const own = async (url: string) => (await fetch(url, { headers: { 'x-keelson-forwarded-by': 'test' } })).json();
    expect((await own(`${b.api}/api/v1/status?env=dev`)).environments[0].apps.every((app: any) => app.instances.length === 0)).toBe(true);
    expect((await own(`${b.api}/api/v1/history?env=dev`)).syncs).toEqual([]);
    // The dashboard's matrix on b shows dev as a runs it, without a standby notice (a answers for it).
    const matrix = await getJson(`${b.api}/api/v1/matrix`);
    expect(matrix.environments.find((e: any) => e.name === 'dev').standby).toBeNull();
    expect(matrix.rows[0].cells.dev.health).toBe('Healthy');
    // `keelson status` on b says who runs it.
    const text = runCli(['status', '--server', b.api]);
    expect(text.stdout).toMatch(new RegExp(`Standby: claimed by ${activeA.claim.holder.replace('/', '\\/')} \\(pid \\d+\\) since \\S+, expires in \\d+s`));

    // The first engine dies without a word.
    const pidsOfA: number[] = activeA.apps[0].instances.map((i: any) => i.pid);
    expect(pidsOfA.length).toBeGreaterThan(0);
    a.child.kill('SIGKILL');
    const takenOver = await waitFor('b takes over and runs dev', async () => {
      const env = await dev(b.api);
      return env?.claim?.state === 'Active' && env.apps[0]?.health === 'Healthy' && env.apps[0].instances.length > 0 && env;
    }, 60_000);
    expect(takenOver.claim.holder).toBe(standby.claim.identity);
    expect(claimFile()).toMatchObject({ holder: standby.claim.identity, transitions: 1 });
    // Another state dir, another store: b does not adopt a's replicas; it starts its own, and a's keep running until
    // `keelson down --state-dir <a's state dir>` (README: "Several engines on one ops repository").
    const pidsOfB: number[] = takenOver.apps[0].instances.map((i: any) => i.pid);
    expect(pidsOfB.filter((p) => pidsOfA.includes(p))).toEqual([]);
    for (const pid of pidsOfA) expect(() => process.kill(pid, 0)).not.toThrow();
    expect(runCli(['down', '--state-dir', a.state]).code).toBe(0);
    await waitFor('a\'s replicas stopped', () => pidsOfA.every((pid) => { try { process.kill(pid, 0); return false; } catch { return true; } }), 30_000);

    // A third engine stands by; b stops cleanly (SIGTERM) and releases: c takes over before b's claim could expire.
    const c = await start('c');
    await waitFor('c stands by', async () => (await dev(c.api))?.claim?.state === 'Standby', 60_000);
    const lastOfB = claimFile();
    await stopProcess(b.child);
    const byC = await waitFor('c takes over', async () => {
      const env = await dev(c.api);
      return env?.claim?.state === 'Active' && env;
    }, 60_000);
    expect(Date.parse(byC.claim.since)).toBeLessThan(Date.parse(lastOfB.renewedAt) + lastOfB.durationMs);
  });
});
