import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appServer, commitAll, freePort, git, gitInit, runCli, startKeelson, stopProcess, tempDir, waitFor, writeTree } from '../helpers.js';

/**
 * `keelson up --auto-update-interval`: the engine watches an app repository's tags and commits the newest version
 * allowed by the App's updatePolicy to the environments that opted in, pushes it to the bare remote and deploys it.
 */
describe('keelson up --auto-update-interval', () => {
  const tmp = tempDir('keelson-autoupdate-');
  const seed = join(tmp.dir, 'seed');
  const remote = join(tmp.dir, 'ops.git');
  const appRepo = join(tmp.dir, 'web-src');
  const state = join(tmp.dir, 'state');
  let api: string;
  let keelson: ReturnType<typeof startKeelson>;
  const status = async () => (await fetch(`${api}/api/v1/status`)).json();
  const app = async (env: string) => (await status()).environments?.find((e: any) => e.name === env)?.apps?.[0];

  beforeAll(async () => {
    const apiPort = await freePort();
    api = `http://127.0.0.1:${apiPort}`;
    mkdirSync(appRepo);
    gitInit(appRepo);
    writeTree(appRepo, { VERSION: '1.0.0' });
    commitAll(appRepo, 'v1.0.0');
    git(appRepo, 'tag', 'v1.0.0');
    const env = (name: string, auto: boolean, port: number) => `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata: { name: ${name} }
spec:
  apps:
    web: { version: "1.0.0", port: ${port}${auto ? ', autoUpdate: true' : ''} }
`;
    writeTree(seed, {
      'apps/web.yaml': `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: web }
spec:
  version: "1.0.0"
  artifact:
    path: ../releases/web-{version}
  run: { command: ["node", "server.js"] }
  readiness: { http: { path: /healthz }, periodSeconds: 1 }
  updatePolicy:
    semver: "^1.0"
    source: { gitTags: ${appRepo} }
`,
      'environments/dev.yaml': env('dev', true, await freePort()),
      'environments/prod.yaml': env('prod', false, await freePort()),
      'releases/web-1.0.0/server.js': appServer('1.0.0'),
      'releases/web-1.2.0/server.js': appServer('1.2.0'),
    });
    gitInit(seed);
    commitAll(seed, 'web 1.0.0');
    git(tmp.dir, 'init', '-q', '--bare', '-b', 'main', remote);
    git(seed, 'remote', 'add', 'origin', remote);
    git(seed, 'push', '-q', 'origin', 'main');
    keelson = startKeelson(['--repo', remote, '--state-dir', state, '--listen', `127.0.0.1:${apiPort}`, '--poll', '30s', '--auto-update-interval', '500ms'], join(tmp.dir, 'keelson.log'));
    await waitFor('web 1.0.0 healthy in dev and prod', async () => (await app('dev'))?.health === 'Healthy' && (await app('prod'))?.health === 'Healthy', 60_000);
  });

  afterAll(async () => {
    if (keelson) await stopProcess(keelson);
    runCli(['down', '--state-dir', state]);
    tmp.cleanup();
  });

  it('commits a new tag to the opted-in environment and deploys it; never downgrades', async () => {
    const before = git(remote, 'rev-parse', 'main');
    for (const tag of ['v1.2.0', 'v2.0.0', 'v0.9.0']) {
      writeTree(appRepo, { VERSION: tag });
      commitAll(appRepo, tag);
      git(appRepo, 'tag', tag);
    }
    await waitFor('web 1.2.0 healthy in dev', async () => {
      const a = await app('dev');
      return a?.version === '1.2.0' && a.health === 'Healthy';
    }, 60_000);
    const log = git(remote, 'log', '--format=%an <%ae>|%s', `${before}..main`).split('\n');
    expect(log).toEqual(['Keelson <keelson@localhost>|Update web 1.0.0 → 1.2.0 in dev']);
    expect((await app('prod'))?.version).toBe('1.0.0');
    const events = (await (await fetch(`${api}/api/v1/environments/dev/apps/web/events`)).json()).events;
    expect(events.find((e: any) => e.type === 'automation.committed')?.data).toMatchObject({ from: '1.0.0', to: '1.2.0' });
  });
});
