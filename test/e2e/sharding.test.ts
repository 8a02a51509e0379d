import { type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commitAll, freePort, getJson, gitInit, runCli, startKeelson, stopProcess, tempDir, waitFor, writeTree } from '../helpers.js';

/**
 * Two `keelson up --shard` processes on one ops repository and one host: the four environments are spread 2/2 (each
 * engine says which are its own in `engine` of the status answer and runs them; the others it shows as Standby). A
 * clean stop of one hands its environments to the other.
 */
describe('sharding on one host (keelson up --shard)', () => {
  const tmp = tempDir('keelson-shard-e2e-');
  const ops = join(tmp.dir, 'ops');
  const claimsDir = join(tmp.dir, 'claims');
  const envs = ['dev', 'prod', 'qa', 'stage'];
  const engines: { child: ChildProcess; api: string; state: string }[] = [];

  const start = async (name: string) => {
    const port = await freePort();
    const state = join(tmp.dir, `state-${name}`);
    const child = startKeelson(['--repo', ops, '--state-dir', state, '--listen', `127.0.0.1:${port}`, '--poll', '1s', '--claims-dir', claimsDir, '--shard'], join(tmp.dir, `${name}.log`));
    const e = { child, api: `http://127.0.0.1:${port}`, state };
    engines.push(e);
    return e;
  };
  const status = (api: string) => getJson(`${api}/api/v1/status`).catch(() => undefined);
  // Run by the engine asked (the others' environments it shows with their engine's apps, `peer` naming it).
  const active = (s: any) => (s?.environments ?? []).filter((e: any) => e.claim?.state === 'Active').map((e: any) => e.name).sort();

  beforeAll(() => {
    const files: Record<string, string> = { 'bin/README': 'inline app\n' };
    files['apps/tick.yaml'] = 'apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata: { name: tick }\nspec:\n  version: "1"\n  artifact: { path: ../bin }\n  run: { command: ["node", "-e", "setInterval(() => {}, 1000)"] }\n';
    for (const env of envs) files[`envs/${env}.yaml`] = `apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: ${env} }\nspec:\n  apps: { tick: {} }\n`;
    writeTree(ops, files);
    gitInit(ops);
    commitAll(ops, 'four environments');
  });

  afterAll(async () => {
    for (const e of engines) {
      if (e.child.exitCode === null && e.child.signalCode === null) await stopProcess(e.child);
      runCli(['down', '--state-dir', e.state]);
    }
    tmp.cleanup();
  });

  it('two engines run two environments each; when one stops, the other runs all four', async () => {
    const a = await start('a');
    const b = await start('b');
    const [sa, sb] = await waitFor('environments spread 2/2', async () => {
      const [sa, sb] = [await status(a.api), await status(b.api)];
      if (sa?.engine?.members !== 2 || sb?.engine?.members !== 2) return false;
      const [aa, ab] = [active(sa), active(sb)];
      return aa.length === 2 && ab.length === 2 && [...aa, ...ab].sort().join() === envs.join() && [sa, sb];
    }, 90_000);
    expect(sa.engine.assigned).toEqual(active(sa));
    expect(sb.engine.assigned).toEqual(active(sb));
    expect(sa.engine.id).not.toBe(sb.engine.id);
    // a shows b's environments as run by b (once it looked again after handing them over).
    const seen = await waitFor('a shows b’s as Standby', async () => {
      const s = await status(a.api);
      const views = sb.engine.assigned.map((env: string) => s.environments.find((e: any) => e.name === env).claim);
      return views.every((v: any) => v.state === 'Standby') && views;
    }, 30_000);
    for (const v of seen) expect(v).toMatchObject({ state: 'Standby', holder: sb.engine.id, url: b.api, message: expect.stringMatching(/^Standby: claimed by /) });

    await stopProcess(b.child);
    const alone = await waitFor('a runs all four', async () => {
      const s = await status(a.api);
      return s?.engine?.members === 1 && active(s).join() === envs.join() && s;
    }, 60_000);
    expect(alone.engine.assigned).toEqual(envs);
  }, 180_000);
});
