import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appServer, commitAll, freePort, gitInit, tempDir, waitFor, writeTree } from '../../../test/helpers.js';
import { Engine } from '../../engine/engine.js';
import { EventBus, type Stamped } from '../../core/events.js';
import { silentLogger } from '../../log.js';
import { Store } from '../../store/store.js';
import { LocalTarget } from './local-target.js';

/** The local target through a real engine: URL artifacts, modified releases, crash loops. */
describe('local target', () => {
  const tmp = tempDir('keelson-local-');
  const ops = join(tmp.dir, 'ops');
  const events: Stamped[] = [];
  let engine: Engine;
  let target: LocalTarget;
  let store: Store;
  let artifacts: Server;
  let tarball: Buffer;
  let artifactPort: number;
  let requests = 0;

  const app = (name: string, artifact: string, extra = '') => `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: ${name} }
spec:
  version: "1.0.0"
  artifact: ${artifact}
  run: { command: ["node", "server.js"] }
  rollout: { progressDeadlineSeconds: 5 }
${extra}---
`;
  const env = (apps: string[]) => `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata: { name: dev }
spec:
  apps: {${apps.map((a) => ` ${a}: {}`).join(',')} }
`;
  const appState = async (name: string) => (await engine.status('dev')).environments[0]?.apps.find((a) => a.name === name);

  beforeAll(async () => {
    // A release tarball served over HTTP on loopback, as a CI system would publish it.
    const src = join(tmp.dir, 'pkg');
    writeTree(src, { 'web-1.0.0/server.js': appServer('url-1.0.0') });
    execFileSync('tar', ['-czf', join(tmp.dir, 'web.tar.gz'), '-C', src, 'web-1.0.0']);
    tarball = readFileSync(join(tmp.dir, 'web.tar.gz'));
    artifacts = createServer((req, res) => {
      requests++;
      if (req.url === '/web-1.0.0.tar.gz') res.end(tarball);
      else res.writeHead(404).end();
    });
    artifactPort = await new Promise<number>((r) => artifacts.listen(0, '127.0.0.1', () => r((artifacts.address() as any).port)));
    const sha = createHash('sha256').update(tarball).digest('hex');
    const webPort = await freePort();
    writeTree(ops, {
      'apps.yaml':
        app('web', `{ url: "http://127.0.0.1:${artifactPort}/web-{version}.tar.gz", sha256: "${sha}" }`, `  port: ${webPort}\n`) +
        app('files', '{ path: releases/files }', '  readiness: { http: { path: /healthz } }\n') +
        app('crashy', '{ path: releases/crashy }'),
      'env.yaml': env(['web', 'files']),
      'releases/files/server.js': appServer('files-1.0.0'),
      'releases/crashy/server.js': appServer('x', { crash: 'fatal: cannot open config.toml' }),
    });
    gitInit(ops);
    commitAll(ops, 'apps');
    const log = silentLogger();
    const state = join(tmp.dir, 'state');
    store = new Store(state);
    const bus = new EventBus();
    bus.subscribe((e) => events.push(e));
    target = new LocalTarget({ stateDir: state, store, bus, log, requeue: (e) => engine.requeue(e) });
    engine = new Engine({ repo: ops, stateDir: state, log, store, bus, target, pollMs: 60_000 });
    await engine.start();
    await waitFor('apps healthy', async () => (await appState('web'))?.health === 'Healthy' && (await appState('files'))?.health === 'Healthy');
  });

  afterAll(async () => {
    await target.supervisor.stopAll();
    await target.proxy.stop();
    await engine.stop();
    store.close();
    artifacts.close();
    tmp.cleanup();
  });

  it('deploys an artifact downloaded from a URL, verified and unpacked once', async () => {
    const web = (await appState('web'))!;
    expect(web.sync).toBe('Synced');
    const port = (web.instances[0] as any).port;
    expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe('version url-1.0.0 \n');
    expect(requests).toBe(1);
  });

  it('heals a hand-edited live release by rolling onto a fresh copy from git', async () => {
    const files = (await appState('files'))!;
    const instance = files.instances[0] as any;
    const releaseDir = join(tmp.dir, 'state', 'releases', 'dev', 'files', instance.release);
    chmodSync(join(releaseDir, 'server.js'), 0o644);
    writeFileSync(join(releaseDir, 'server.js'), appServer('hacked'));
    await waitFor('drift detected', () => events.some((e) => e.type === 'drift.detected' && e.kind === 'release-modified'));
    const healed = await waitFor('replica replaced', async () => {
      const a = await appState('files');
      const i = a?.instances[0] as any;
      return a?.health === 'Healthy' && a.sync === 'Synced' && a.instances.length === 1 && i.pid !== instance.pid && i;
    });
    expect(readFileSync(join(tmp.dir, 'state', 'releases', 'dev', 'files', healed.release, 'server.js'), 'utf8')).toBe(appServer('files-1.0.0'));
    expect(await (await fetch(`http://127.0.0.1:${healed.port}/`)).text()).toBe('version files-1.0.0 \n');
  });

  it('reports a crash loop as Degraded with the last log lines, restarting with backoff', async () => {
    writeFileSync(join(ops, 'env.yaml'), env(['web', 'files', 'crashy']));
    commitAll(ops, 'add crashy');
    await engine.refresh();
    const crashy = await waitFor('crashy degraded', async () => {
      const a = await appState('crashy');
      return a?.health === 'Degraded' && a.message.includes('fatal: cannot open config.toml') && a;
    });
    expect(crashy.message).toContain('crash-looping');
    const restarts = events.filter((e) => e.type === 'replica.restarted' && e.app === 'crashy').map((e: any) => e.delayMs);
    expect(restarts.slice(0, 3)).toEqual([0, 1000, 2000].slice(0, restarts.length >= 3 ? 3 : restarts.length));
  });
});
