import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProxyClient } from '../../src/targets/local/proxy/client.js';
import { appServer, commitAll, freePort, getJson, gitInit, requestLoop, root, runCli, stopProcess, tempDir, waitFor, writeTree } from '../helpers.js';

/**
 * Keelson restarts and upgrades without dropping traffic: the proxy and the apps are their own processes, the
 * engine only re-adopts them. A steady request loop runs across several engine restarts and an upgrade to another
 * build in another directory.
 */
describe('engine restarts and upgrades under load', () => {
  const tmp = tempDir('keelson-restart-');
  const ops = join(tmp.dir, 'ops');
  const state = join(tmp.dir, 'state');
  const upgraded = join(tmp.dir, 'keelson-next');
  let apiPort: number;
  let appPort: number;
  let keelson: ChildProcess | undefined;
  let starts = 0;

  const up = (binPath: string) => {
    const child = spawn(process.execPath, [binPath, 'up', '--repo', ops, '--state-dir', state, '--listen', `127.0.0.1:${apiPort}`, '--poll', '1s'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, KEELSON_LOG_LEVEL: 'info' },
    });
    const chunks: Buffer[] = [];
    child.stdout!.on('data', (c) => chunks.push(c));
    child.stderr!.on('data', (c) => chunks.push(c));
    const log = join(tmp.dir, `keelson-${starts++}.log`);
    child.on('exit', () => writeFileSync(log, Buffer.concat(chunks)));
    keelson = child;
  };
  const web = async () => (await getJson(`http://127.0.0.1:${apiPort}/api/v1/status`)).environments[0]?.apps.find((a: any) => a.name === 'web');
  const engineReady = () => waitFor('engine serving status with web Healthy', async () => (await web())?.health === 'Healthy' && (await web())?.sync === 'Synced');
  const replicaPids = async () => (await web()).instances.map((i: any) => i.pid).sort();

  beforeAll(async () => {
    apiPort = await freePort();
    appPort = await freePort();
    writeTree(ops, {
      'apps/web.yaml': `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: web }
spec:
  version: "1.0.0"
  artifact: { path: ../releases/web }
  run: { command: ["node", "server.js"] }
  replicas: 2
  port: ${appPort}
  readiness: { http: { path: /healthz }, periodSeconds: 1 }
`,
      'environments/dev.yaml': 'apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: dev }\nspec:\n  apps: { web: {} }\n',
      'releases/web/server.js': appServer('1.0.0'),
    });
    gitInit(ops);
    commitAll(ops, 'web');
    // The "upgrade": a copy of the build in another directory, with a changed file, as a package upgrade would install it.
    mkdirSync(upgraded, { recursive: true });
    cpSync(join(root, 'dist'), join(upgraded, 'dist'), { recursive: true });
    cpSync(join(root, 'bin'), join(upgraded, 'bin'), { recursive: true });
    // Files the build reads at run time from the package (the dashboard's assets).
    cpSync(join(root, 'src/ui/assets'), join(upgraded, 'src/ui/assets'), { recursive: true });
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    writeFileSync(join(upgraded, 'package.json'), JSON.stringify({ ...pkg, version: '9.9.9-upgraded' }));
    symlinkSync(join(root, 'node_modules'), join(upgraded, 'node_modules'));
    up(join(root, 'bin', 'keelson'));
    await engineReady();
  });

  afterAll(async () => {
    if (keelson) await stopProcess(keelson);
    runCli(['down', '--state-dir', state]);
    tmp.cleanup();
  });

  it('fails no request and restarts no app across three restarts and an upgrade', async () => {
    const pids = await replicaPids();
    const proxy = new ProxyClient(join(state, 'proxy.sock'));
    const proxyPid = (await proxy.health()).pid;
    const loop = requestLoop(appPort, 2);
    await waitFor('traffic', () => loop.total > 50);
    for (let i = 0; i < 3; i++) {
      await stopProcess(keelson!);
      const before = loop.total;
      await waitFor('traffic while no engine runs', () => loop.total > before + 50);
      up(join(root, 'bin', 'keelson'));
      await engineReady();
    }
    await stopProcess(keelson!);
    up(join(upgraded, 'bin', 'keelson'));
    await engineReady();
    const version = spawn(process.execPath, [join(upgraded, 'bin', 'keelson'), 'version']);
    const out = await new Promise<string>((resolve) => {
      let s = '';
      version.stdout.on('data', (c) => (s += c));
      version.on('exit', () => resolve(s.trim()));
    });
    expect(out).toBe('9.9.9-upgraded');
    const after = loop.total;
    await waitFor('traffic after the upgrade', () => loop.total > after + 50);
    await loop.stop();
    expect(loop.failures).toEqual([]);
    expect(loop.total).toBeGreaterThan(500);
    expect(await replicaPids()).toEqual(pids);
    expect((await web()).instances.every((i: any) => i.restarts === 0)).toBe(true);
    expect((await proxy.health()).pid).toBe(proxyPid);
  });
});
