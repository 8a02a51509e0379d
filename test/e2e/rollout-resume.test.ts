import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appServer, commitAll, freePort, gitInit, requestLoop, root, runCli, tempDir, waitFor, writeTree } from '../helpers.js';

/**
 * A progressive rollout survives an engine restart (Argo Rollouts semantics): a real `keelson up` is killed in the
 * middle of a canary (SIGKILL) and of a blue/green waiting for promotion (SIGTERM); the replicas and the proxy keep
 * running, and the next engine adopts both sets and resumes at the same step with the same traffic split.
 */
describe('a progressive rollout resumes where it was after an engine restart', () => {
  const tmp = tempDir('keelson-rollout-resume-');
  const ops = join(tmp.dir, 'ops');
  const state = join(tmp.dir, 'state');
  const token = 'kls_operator_token_for_rollout_resume_0123';
  const versions = { cy: '1.0.0', bg: '1.0.0' };
  let api: string;
  let cyPort: number;
  let bgPort: number;
  let keelson: ChildProcess | undefined;
  let starts = 0;

  const up = () => {
    const child = spawn(process.execPath, [join(root, 'bin', 'keelson'), 'up', '--repo', ops, '--state-dir', state, '--listen', api.slice('http://'.length), '--poll', '1s'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, KEELSON_LOG_LEVEL: 'debug', KEELSON_TOKEN_OPERATOR: token },
    });
    const chunks: Buffer[] = [];
    child.stdout!.on('data', (c) => chunks.push(c));
    child.stderr!.on('data', (c) => chunks.push(c));
    const log = join(tmp.dir, `keelson-${starts++}.log`);
    child.on('exit', () => writeFileSync(log, Buffer.concat(chunks)));
    keelson = child;
  };
  const kill = (signal: NodeJS.Signals) =>
    new Promise<number | null>((resolve) => {
      keelson!.once('exit', (code) => resolve(code));
      keelson!.kill(signal);
    });
  const auth = { authorization: `Bearer ${token}` };
  const appOf = async (name: string) => {
    const res = await fetch(`${api}/api/v1/status`, { headers: auth });
    if (!res.ok) throw new Error(`status: ${res.status} ${await res.text()}`);
    return (await res.json()).environments[0]?.apps.find((a: any) => a.name === name);
  };
  const pidsOf = async (name: string, version: string) => ((await appOf(name)).instances as { pid: number; version: string }[]).filter((i) => i.version === version).map((i) => i.pid).sort();
  const rollout = async (name: string) => {
    const res = await fetch(`${api}/api/v1/environments/dev/apps/${name}/rollout`, { headers: auth });
    return res.ok ? res.json() : undefined;
  };
  const promote = async (name: string) => {
    const res = await fetch(`${api}/api/v1/environments/dev/apps/${name}/rollout/promote`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{}' });
    expect(res.status).toBe(200);
  };
  const deploy = (name: 'cy' | 'bg', version: string) => {
    versions[name] = version;
    writeTree(ops, { 'environments/dev.yaml': envYaml() });
    commitAll(ops, `${name} ${version}`);
  };
  const envYaml = () => `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata: { name: dev }
spec:
  apps:
    cy: { version: "${versions.cy}" }
    bg: { version: "${versions.bg}" }
`;
  /** `n` new clients (a connection each, no cookie) through the proxy: how many each version answered. */
  const spread = async (port: number, n: number) => {
    const counts: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const body = await new Promise<string>((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
            let b = '';
            res.setEncoding('utf8');
            res.on('data', (c) => (b += c));
            res.on('end', () => resolve(res.statusCode === 200 ? b.trim() : `status ${res.statusCode}`));
          })
          .on('error', reject);
      });
      counts[body] = (counts[body] ?? 0) + 1;
    }
    return counts;
  };
  /** Whether `pid` still runs (a zombie does not: a killed engine's children are reaped by whoever adopts them). */
  const running = (pid: number) => {
    try {
      return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
    } catch {
      return false;
    }
  };
  const engineServing = () => waitFor('engine serving status', () => appOf('cy').catch(() => undefined), 60_000);

  beforeAll(async () => {
    const apiPort = await freePort();
    api = `http://127.0.0.1:${apiPort}`;
    cyPort = await freePort();
    bgPort = await freePort();
    const app = (name: string, port: number, rollout: string) => `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: ${name} }
spec:
  version: "1.0.0"
  artifact: { path: "../releases/{version}" }
  run: { command: ["node", "server.js"] }
  replicas: 4
  port: ${port}
  readiness: { http: { path: /healthz }, periodSeconds: 1 }
  terminationGracePeriodSeconds: 5
  rollout:
    progressDeadlineSeconds: 60
${rollout}`;
    writeTree(ops, {
      'apps/cy.yaml': app(
        'cy',
        cyPort,
        `    strategy: canary
    canary:
      steps:
        - setWeight: 25
        - pause: {}
        - setWeight: 50
        - pause: {}
`,
      ),
      'apps/bg.yaml': app(
        'bg',
        bgPort,
        `    strategy: blueGreen
    blueGreen:
      autoPromotionEnabled: false
      scaleDownDelaySeconds: 0
`,
      ),
      'environments/dev.yaml': envYaml(),
      'releases/1.0.0/server.js': appServer('1.0.0'),
      'releases/2.0.0/server.js': appServer('2.0.0'),
    });
    gitInit(ops);
    commitAll(ops, 'cy and bg 1.0.0');
    up();
    await waitFor('apps healthy', async () => (await appOf('cy'))?.health === 'Healthy' && (await appOf('bg'))?.health === 'Healthy', 60_000);
  });

  afterAll(async () => {
    if (keelson && keelson.exitCode === null && keelson.signalCode === null) await kill('SIGTERM');
    runCli(['down', '--state-dir', state]);
    tmp.cleanup();
  });

  it('canary paused at a later step: SIGKILL of the engine, same replicas, same step, same split; promote completes it', async () => {
    deploy('cy', '2.0.0');
    await waitFor('paused at 25%', async () => {
      const r = await rollout('cy');
      return r?.phase === 'Paused' && r.weight === 25 && r;
    }, 60_000);
    await promote('cy');
    const paused = await waitFor('paused at 50%', async () => {
      const r = await rollout('cy');
      return r?.phase === 'Paused' && r.weight === 50 && r;
    }, 60_000);
    const stable = await pidsOf('cy', '1.0.0');
    const canary = await pidsOf('cy', '2.0.0');
    expect([stable.length, canary.length]).toEqual([4, 2]);
    const before = await spread(cyPort, 200);
    expect(before['version 2.0.0']).toBeGreaterThanOrEqual(80);
    expect(before['version 2.0.0']).toBeLessThanOrEqual(120);

    const loop = requestLoop(cyPort);
    await waitFor('traffic', () => loop.total > 20);
    await kill('SIGKILL');
    // Nobody manages the proxy now: it keeps the split it had.
    const meanwhile = await spread(cyPort, 200);
    expect(meanwhile['version 2.0.0']).toBeGreaterThanOrEqual(80);
    expect(meanwhile['version 2.0.0']).toBeLessThanOrEqual(120);
    expect(meanwhile['version 1.0.0'] + meanwhile['version 2.0.0']).toBe(200);

    up();
    await engineServing();
    const resumed = await waitFor('the rollout resumed, paused at 50%', async () => {
      const r = await rollout('cy');
      return r?.phase === 'Paused' && r;
    }, 60_000);
    expect(resumed).toMatchObject({ from: '1.0.0', to: '2.0.0', step: paused.step, steps: paused.steps, weight: 50, untilPromoted: true });
    // Both sets were adopted, none restarted.
    expect(await pidsOf('cy', '1.0.0')).toEqual(stable);
    expect(await pidsOf('cy', '2.0.0')).toEqual(canary);
    const after = await spread(cyPort, 200);
    expect(after['version 2.0.0']).toBeGreaterThanOrEqual(80);
    expect(after['version 2.0.0']).toBeLessThanOrEqual(120);

    await promote('cy');
    await waitFor('rollout completed', async () => (await rollout('cy'))?.phase === 'Completed', 60_000);
    const done = await waitFor('cy 2.0.0 synced', async () => {
      const a = await appOf('cy');
      return a?.sync === 'Synced' && a.health === 'Healthy' && a.replicas.total === 4 && a;
    }, 60_000);
    expect(done.version).toBe('2.0.0');
    const final = (done.instances as { pid: number; version: string }[]).map((i) => i.pid);
    for (const pid of canary) expect(final).toContain(pid);
    for (const pid of stable) expect(running(pid)).toBe(false);
    expect(await spread(cyPort, 20)).toEqual({ 'version 2.0.0': 20 });
    await loop.stop();
    expect(loop.failures).toEqual([]);
  });

  it('blue/green waiting for promotion: SIGTERM of the engine, the preview set adopted and still waiting; promote switches', async () => {
    deploy('bg', '2.0.0');
    const waiting = await waitFor('waiting for promotion', async () => {
      const r = await rollout('bg');
      return r?.phase === 'Paused' && r.untilPromoted && r;
    }, 60_000);
    const blue = await pidsOf('bg', '1.0.0');
    const green = await pidsOf('bg', '2.0.0');
    expect([blue.length, green.length]).toEqual([4, 4]);
    expect(await spread(bgPort, 50)).toEqual({ 'version 1.0.0': 50 });

    const loop = requestLoop(bgPort);
    await waitFor('traffic', () => loop.total > 20);
    // A rollout waiting for promotion does not hold the engine up: it stops at once and says so.
    expect(await kill('SIGTERM')).toBe(0);
    expect(await spread(bgPort, 50)).toEqual({ 'version 1.0.0': 50 });

    up();
    await engineServing();
    const resumed = await waitFor('the rollout resumed, waiting', async () => {
      const r = await rollout('bg');
      return r?.phase === 'Paused' && r;
    }, 60_000);
    expect(resumed).toMatchObject({ from: '1.0.0', to: '2.0.0', step: waiting.step, weight: 0, untilPromoted: true });
    expect(await pidsOf('bg', '1.0.0')).toEqual(blue);
    expect(await pidsOf('bg', '2.0.0')).toEqual(green);
    expect(await spread(bgPort, 50)).toEqual({ 'version 1.0.0': 50 });

    await promote('bg');
    await waitFor('rollout completed', async () => (await rollout('bg'))?.phase === 'Completed', 60_000);
    const done = await waitFor('bg 2.0.0 synced', async () => {
      const a = await appOf('bg');
      return a?.sync === 'Synced' && a.health === 'Healthy' && a.replicas.total === 4 && a;
    }, 60_000);
    expect((done.instances as { pid: number }[]).map((i) => i.pid).sort()).toEqual(green);
    expect(await spread(bgPort, 20)).toEqual({ 'version 2.0.0': 20 });
    await loop.stop();
    expect(loop.failures).toEqual([]);
  });
});
