import type { ChildProcess } from 'node:child_process';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appServer, bin, commitAll, freePort, getJson, gitInit, runCli, startKeelson, stopProcess, tempDir, waitFor, writeTree } from '../helpers.js';

/** `keelson chaos` against a real engine: kills real replicas and probes through the real proxy. */
describe('keelson chaos (end to end)', () => {
  const tmp = tempDir('keelson-chaos-');
  const ops = join(tmp.dir, 'ops');
  const state = join(tmp.dir, 'state');
  let api: string;
  let keelson: ChildProcess;

  const envYaml = (prot: boolean) => `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata:
  name: dev
spec:
  apps:
    web: {}
    solo: {}
${prot ? '  protected: true\n' : ''}`;
  const app = (name: string, replicas: number, port: number) => `apiVersion: keelson.dev/v1alpha1
kind: App
metadata:
  name: ${name}
spec:
  version: "1.0.0"
  artifact:
    path: ../releases/web
  run:
    command: ["node", "server.js"]
  replicas: ${replicas}
  port: ${port}
  readiness:
    http: { path: /healthz }
    periodSeconds: 1
  terminationGracePeriodSeconds: 2
`;
  // The engine's keep-alive connection may close while chaos runs; a status read retries once on a fresh one.
  const status = async () => (await getJson(`${api}/api/v1/status?env=dev`).catch(() => getJson(`${api}/api/v1/status?env=dev`))).environments[0];
  const chaos = (...args: string[]) => spawnSync(process.execPath, [bin, 'chaos', '--env', 'dev', '--server', api, ...args], { encoding: 'utf8', cwd: tmp.dir });

  beforeAll(async () => {
    const apiPort = await freePort();
    api = `http://127.0.0.1:${apiPort}`;
    writeTree(ops, {
      'apps/web.yaml': app('web', 2, await freePort()),
      'apps/solo.yaml': app('solo', 1, await freePort()),
      'environments/dev.yaml': envYaml(true),
      'releases/web/server.js': appServer('1.0.0'),
    });
    gitInit(ops);
    commitAll(ops, 'web x2, solo x1, protected');
    keelson = startKeelson(['--repo', ops, '--state-dir', state, '--listen', `127.0.0.1:${apiPort}`, '--poll', '1s'], join(tmp.dir, 'keelson.log'));
    await waitFor('both apps healthy', async () => {
      const env = (await getJson(`${api}/api/v1/status?env=dev`)).environments[0];
      return env?.apps.length === 2 && env.apps.every((a: any) => a.health === 'Healthy' && a.replicas.ready === a.replicas.desired);
    });
  });

  afterAll(async () => {
    if (keelson) await stopProcess(keelson);
    runCli(['down', '--state-dir', state]);
    tmp.cleanup();
  });

  it('refuses a protected environment without --force', () => {
    const r = chaos('--duration', '1s', '--dry-run');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/environment "dev" is protected; pass --force/);
  });

  it('kills one replica at a time, never the only replica of an app, and reports recovery and availability', async () => {
    const before = (await status()).apps.find((a: any) => a.name === 'solo').instances.map((i: any) => i.pid);
    const r = chaos('--force', '--duration', '6s', '--interval', '1500ms', '--out', join(tmp.dir, 'report'));
    expect(r.stderr).toContain('report saved');
    expect(r.status).toBe(0);
    const report = JSON.parse(readFileSync(join(tmp.dir, 'report.json'), 'utf8'));
    expect(report.kills.length).toBeGreaterThanOrEqual(1);
    expect(report.kills.every((k: any) => k.app === 'web')).toBe(true);
    expect(report.recovery.unrecovered).toBe(0);
    expect(report.recovery.p95Ms).toBeGreaterThan(0);
    expect(report.detect.medianMs).not.toBeNull();
    expect(report.probes.total).toBeGreaterThan(50);
    expect(report.restarts).toBeGreaterThanOrEqual(report.kills.length);
    expect(report.rollbacks).toBe(0);
    const md = readFileSync(join(tmp.dir, 'report.md'), 'utf8');
    expect(md).toMatch(/^# Chaos report: dev\n/);
    expect(md).toMatch(/\| availability through the proxy \| \d+\.\d{3} % \(\d+\/\d+\) \|/);
    // The single replica of solo was never touched.
    const after = (await status()).apps.find((a: any) => a.name === 'solo').instances.map((i: any) => i.pid);
    expect(after).toEqual(before);
  });

  it('--dry-run names what it would kill and kills nothing', async () => {
    const pids = async () => (await status()).apps.flatMap((a: any) => a.instances.map((i: any) => i.pid)).sort();
    const before = await pids();
    const r = chaos('--force', '--app', 'web', '--duration', '1s', '--interval', '500ms', '--dry-run', '--out', join(tmp.dir, 'dry'));
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/would kill web replica/);
    expect(await pids()).toEqual(before);
  });
});
