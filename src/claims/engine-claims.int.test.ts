import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { Engine } from '../engine/engine.js';
import { EventBus } from '../core/events.js';
import { silentLogger } from '../log.js';
import { Store } from '../store/store.js';
import { LocalTarget } from '../targets/local/local-target.js';
import { commitAll, gitInit, tempDir, waitFor, writeTree } from '../../test/helpers.js';
import { FileClaims } from './file-claims.js';
import { ClaimKeeper } from './keeper.js';

/**
 * An engine that loses its claim in the middle of a sync stops writing: the app whose rollout runs finishes it, the
 * apps after it are not applied, and the sync is reported as interrupted; once the claim is back, the sync goes on.
 */
const tmp = tempDir('keelson-claims-engine-');
const ops = join(tmp.dir, 'ops');
const state = join(tmp.dir, 'state');
const ready = join(tmp.dir, 'ready');
const log = silentLogger();
const store = new Store(state);
const bus = new EventBus();
let failing = false;
const files = new FileClaims(join(tmp.dir, 'claims'));
const flaky: FileClaims = Object.assign(Object.create(files) as FileClaims, {
  read: (env: string) => (failing ? Promise.reject(new Error('claims dir unreachable')) : files.read(env)),
});
let engine: Engine | undefined;
const claims = new ClaimKeeper({ identity: 'host/engine', backendFor: () => flaky, log, onAcquired: (env) => engine?.requeue(env), durationMs: 2_000, renewMs: 400, retryMs: 200, marginMs: 500 });
const target = new LocalTarget({ stateDir: state, store, bus, log, requeue: (env) => engine?.requeue(env) });
engine = new Engine({ repo: ops, stateDir: state, log, store, bus, target, pollMs: 600_000, claims });

const repo = (version: string) => ({
  'apps/a.yaml': `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: a }
spec:
  version: "${version}"
  artifact: { path: ../bin }
  run: { command: ["node", "-e", "setInterval(() => {}, 1000)"] }
  readiness: { exec: { command: ["test", "-f", ${JSON.stringify(ready)}] }, periodSeconds: 1 }
---
apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: b }
spec:
  version: "${version}"
  artifact: { path: ../bin }
  run: { command: ["node", "-e", "setInterval(() => {}, 1000)"] }
  dependsOn: [a]
---
apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata: { name: dev }
spec:
  apps: { a: {}, b: {} }
`,
  'bin/README': 'inline app\n',
});

afterAll(async () => {
  await engine!.stop();
  await target.supervisor.stopAll();
  await target.proxy.stop();
  store.close();
  tmp.cleanup();
});

it('a claim lost during a sync stops it after the app under way; the claim back, the sync goes on', async () => {
  writeTree(ops, repo('1'));
  gitInit(ops);
  commitAll(ops, 'v1');
  writeFileSync(ready, '');
  await engine!.start();
  const versions = async () => Object.fromEntries((await engine!.status('dev')).environments[0].apps.map((a) => [a.name, `${a.version} ${a.sync}`]));
  await waitFor('v1 deployed', async () => JSON.stringify(await versions()) === JSON.stringify({ a: '1 Synced', b: '1 Synced' }));
  expect(claims.holds('dev')).toBe(true);

  // v2: a's new replica waits for readiness; meanwhile the claims dir becomes unreachable and the claim is lost.
  rmSync(ready);
  const completed: string[] = [];
  bus.subscribe((e: any) => e.type === 'sync.completed' && completed.push(e.revision));
  writeTree(ops, repo('2'));
  const v2 = commitAll(ops, 'v2');
  void engine!.refresh();
  await waitFor('a rolling out', () => engine!.status('dev').then((s) => s.environments[0].syncing));
  failing = true;
  await waitFor('claim lost', () => !claims.holds('dev'), 20_000);
  const status = (await engine!.status('dev')).environments[0];
  expect(status.claim!.state).not.toBe('Active');
  writeFileSync(ready, ''); // a's rollout can finish now
  await waitFor('sync ended', () => engine!.status('dev').then((s) => !s.environments[0].syncing), 60_000);
  // b was never applied, and no sync of v2 was recorded: it was interrupted, not done.
  expect((await versions()).b).toBe('1 OutOfSync');
  expect(completed).not.toContain(v2);
  expect(store.history({ env: 'dev' }).filter((s) => s.revision === v2)).toEqual([]);

  // The claims dir is back: the engine re-takes the claim and finishes the sync.
  failing = false;
  await waitFor('v2 deployed', async () => JSON.stringify(await versions()) === JSON.stringify({ a: '2 Synced', b: '2 Synced' }), 60_000);
  expect(claims.holds('dev')).toBe(true);
}, 180_000);
