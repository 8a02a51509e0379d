import http from 'node:http';
import { join } from 'node:path';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commitAll, freePort, gitInit, tempDir, waitFor, writeTree } from '../../../test/helpers.js';
import { rolloutRoutes } from '../../api/rollout-routes.js';
import { Engine } from '../../engine/engine.js';
import { EventBus, type Stamped } from '../../core/events.js';
import { silentLogger } from '../../log.js';
import type { RolloutTracker } from '../../rollout/tracker.js';
import { Store } from '../../store/store.js';
import { LocalTarget } from './local-target.js';

/** A release that answers `version X` on `/`, 500 on `/` when `failing`, and 500 on `/check` when `checkFails`. */
function server(version: string, o: { failing?: boolean; checkFails?: boolean; crash?: boolean } = {}): string {
  if (o.crash) return `console.error('cannot start: missing config'); process.exit(1);\n`;
  return `
const http = require('node:http');
const server = http.createServer((req, res) => {
  if (req.url === '/healthz') return res.end('ok');
  if (req.url === '/check') { res.statusCode = ${o.checkFails ? 500 : 200}; return res.end('check'); }
  res.statusCode = ${o.failing ? 500 : 200};
  res.end('version ${version}');
});
server.keepAliveTimeout = 2000;
server.listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => { server.close(() => process.exit(0)); server.closeIdleConnections(); });
`;
}

/** One sequential client over keep-alive: every answer in order, with its status. */
function trafficLoop(port: number) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const seen: { body: string; status: number; at: number }[] = [];
  const errors: string[] = [];
  let running = true;
  const one = () =>
    new Promise<void>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => {
          seen.push({ body: body.trim(), status: res.statusCode ?? 0, at: Date.now() });
          resolve();
        });
      });
      req.on('error', (err) => {
        errors.push(err.message);
        resolve();
      });
    });
  const done = (async () => {
    while (running) {
      await one();
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  return {
    seen,
    errors,
    count: (body: string) => seen.filter((s) => s.body === body).length,
    failed: () => seen.filter((s) => s.status !== 200).length + errors.length,
    async stop() {
      running = false;
      await done;
      agent.destroy();
    },
  };
}

function get(port: number, headers: Record<string, string> = {}): Promise<{ body: string; status: number; cookie?: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/', headers, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ body, status: res.statusCode ?? 0, cookie: res.headers['set-cookie']?.[0]?.split(';')[0] }));
      })
      .on('error', reject);
  });
}

describe('progressive rollouts on the local target (real processes through the real proxy)', () => {
  const tmp = tempDir('keelson-progressive-');
  const ops = join(tmp.dir, 'ops');
  const events: Stamped[] = [];
  let engine: Engine;
  let store: Store;
  let bus: EventBus;
  let tracker: RolloutTracker;
  let api: Hono;
  let bgPort: number;
  let cyPort: number;
  const versions = { bg: '1.0.0', cy: '1.0.0' };

  const apps = () => `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: bg }
spec:
  version: "1.0.0"
  artifact: { path: "releases/bg-{version}" }
  run: { command: ["node", "server.js"] }
  replicas: 2
  port: ${bgPort}
  readiness: { http: { path: /healthz }, periodSeconds: 1 }
  terminationGracePeriodSeconds: 5
  rollout:
    progressDeadlineSeconds: 20
    strategy: blueGreen
    blueGreen:
      scaleDownDelaySeconds: 2
      postPromotionAnalysis:
        metrics:
          - name: smoke
            http: { path: /check }
            intervalSeconds: 1
            count: 2
---
apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: cy }
spec:
  version: "1.0.0"
  artifact: { path: "releases/cy-{version}" }
  run: { command: ["node", "server.js"] }
  replicas: 2
  port: ${cyPort}
  readiness: { http: { path: /healthz }, periodSeconds: 1 }
  terminationGracePeriodSeconds: 5
  rollout:
    progressDeadlineSeconds: 300
    strategy: canary
    canary:
      steps:
        - setWeight: 25
        - pause: {}
        - analysis:
            metrics:
              - name: errors
                requests: { maxErrorRate: 0.05, minRequests: 3 }
                intervalSeconds: 1
                count: 2
`;
  const envYaml = () => `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata: { name: dev }
spec:
  apps:
    bg: { version: "${versions.bg}" }
    cy: { version: "${versions.cy}" }
`;
  const appState = async (name: string) => (await engine.status('dev')).environments[0]?.apps.find((a) => a.name === name);
  const deploy = async (app: 'bg' | 'cy', version: string) => {
    versions[app] = version;
    writeTree(ops, { 'env.yaml': envYaml() });
    const rev = commitAll(ops, `${app} ${version}`);
    await engine.refresh();
    return rev;
  };
  const pids = async (name: string, version?: string) =>
    ((await appState(name))?.instances as { pid: number; version: string }[]).filter((i) => !version || i.version === version).map((i) => i.pid).sort();
  const eventAfter = (seq: number, pred: (e: Stamped) => boolean) => waitFor('event', () => events.find((e) => e.seq > seq && pred(e)), 60_000);
  const lastSeq = () => events[events.length - 1]?.seq ?? 0;
  const promote = (app: string, full = false) =>
    api.request(`/api/v1/environments/dev/apps/${app}/rollout/promote`, { method: 'POST', body: JSON.stringify({ full }), headers: { 'content-type': 'application/json' } });

  beforeAll(async () => {
    bgPort = await freePort();
    cyPort = await freePort();
    writeTree(ops, {
      'apps.yaml': apps(),
      'env.yaml': envYaml(),
      'releases/bg-1.0.0/server.js': server('bg-1.0.0'),
      'releases/bg-2.0.0/server.js': server('bg-2.0.0'),
      'releases/bg-3.0.0/server.js': server('bg-3.0.0', { checkFails: true }),
      'releases/cy-1.0.0/server.js': server('cy-1.0.0'),
      'releases/cy-2.0.0/server.js': server('cy-2.0.0'),
      'releases/cy-3.0.0/server.js': server('cy-3.0.0', { failing: true }),
      'releases/cy-4.0.0/server.js': server('cy-4.0.0', { crash: true }),
      'releases/cy-5.0.0/server.js': server('cy-5.0.0'),
    });
    gitInit(ops);
    commitAll(ops, 'apps');
    const log = silentLogger();
    const state = join(tmp.dir, 'state');
    store = new Store(state);
    bus = new EventBus();
    bus.subscribe((e) => events.push(e));
    api = new Hono();
    tracker = rolloutRoutes(api, { bus, knownEnv: () => undefined });
    const target: LocalTarget = new LocalTarget({ stateDir: state, store, bus, log, requeue: (e) => engine.requeue(e) });
    engine = new Engine({ repo: ops, stateDir: state, log, store, bus, target, pollMs: 600_000 });
    await engine.start();
    await waitFor('apps healthy', async () => {
      if ((await appState('bg'))?.health === 'Healthy' && (await appState('cy'))?.health === 'Healthy') return true;
      throw new Error(JSON.stringify(await engine.status('dev')).slice(0, 2000));
    });
  });

  afterAll(async () => {
    tracker?.close();
    await engine?.stop();
    const target = (engine as unknown as { target: LocalTarget }).target;
    await target?.supervisor.stopAll();
    await target?.proxy.stop();
    store?.close();
    tmp.cleanup();
  });

  it('blue/green: switches all traffic at once, keeps the old set for the scale-down delay, then scales it down', async () => {
    const blue = await pids('bg');
    const loop = trafficLoop(bgPort);
    await waitFor('traffic', () => loop.count('version bg-1.0.0') > 20);
    const seq = lastSeq();
    await deploy('bg', '2.0.0');
    await waitFor('switched', () => loop.count('version bg-2.0.0') > 0);
    // At the switch the whole old set still runs: it is kept for the scale-down delay.
    for (const pid of blue) expect(process.kill(pid, 0)).toBe(true);
    await eventAfter(seq, (e) => e.type === 'rollout.completed' && e.app === 'bg');
    await waitFor('bg synced', async () => (await appState('bg'))?.sync === 'Synced');
    await waitFor('more traffic', () => loop.count('version bg-2.0.0') > 20);
    await loop.stop();
    expect(loop.failed()).toBe(0);
    // Atomic: one sequential client never sees the old version again once it saw the new one.
    const first = loop.seen.findIndex((s) => s.body === 'version bg-2.0.0');
    expect(loop.seen.slice(first).filter((s) => s.body !== 'version bg-2.0.0')).toEqual([]);
    const st = await appState('bg');
    expect(st).toMatchObject({ version: '2.0.0', health: 'Healthy', replicas: { desired: 2, ready: 2, total: 2 } });
    for (const pid of blue) expect(() => process.kill(pid, 0)).toThrow();
    expect(events.filter((e) => e.seq > seq && e.type === 'rollout.analysis' && e.app === 'bg' && e.metric === '*').map((e) => (e as any).phase)).toEqual(['Successful']);
  });

  it('blue/green: a failed post-promotion analysis switches straight back to the old set, reported as Failed', async () => {
    const green = await pids('bg');
    const loop = trafficLoop(bgPort);
    await waitFor('traffic', () => loop.count('version bg-2.0.0') > 20);
    const seq = lastSeq();
    await deploy('bg', '3.0.0');
    const aborted = await eventAfter(seq, (e) => e.type === 'rollout.aborted' && e.app === 'bg');
    // Promoted first (all traffic to 3.0.0; a client may or may not catch that short window), then switched back.
    expect(events.some((e) => e.seq > seq && e.type === 'rollout.step' && e.app === 'bg' && e.weight === 100)).toBe(true);
    await waitFor('back on 2.0.0', () => loop.seen.length > 0 && loop.seen[loop.seen.length - 1].body === 'version bg-2.0.0');
    const st = await waitFor('bg Failed', async () => {
      const a = await appState('bg');
      return a?.sync === 'Failed' && a;
    });
    await loop.stop();
    expect(loop.failed()).toBe(0);
    expect((aborted as any).reason).toMatch(/post-promotion analysis failed: metric "smoke" failed .*answered 500/);
    expect(st.version).toBe('2.0.0');
    expect(st.message).toContain('post-promotion analysis failed');
    // The same processes serve again: the old set was never stopped.
    expect(await pids('bg')).toEqual(green);
    expect(events.some((e) => e.seq > seq && e.type === 'app.rolledBack' && e.app === 'bg')).toBe(true);
    expect(events.some((e) => e.seq > seq && e.type === 'app.changed' && e.app === 'bg')).toBe(false);
    await waitFor('Failed sync recorded', () => store.history({ env: 'dev', app: 'bg', limit: 1 })[0]?.result === 'Failed');
  });

  it('canary: pauses until promote-rollout, splits traffic by weight, keeps a client on one version by cookie', async () => {
    const seq = lastSeq();
    await deploy('cy', '2.0.0');
    await eventAfter(seq, (e) => e.type === 'rollout.paused' && e.app === 'cy');
    expect(tracker.get('dev', 'cy')).toMatchObject({ phase: 'Paused', untilPromoted: true, weight: 25, from: '1.0.0', to: '2.0.0' });
    // 25% of a fixed number of new clients (no cookie) go to the canary.
    const bodies: string[] = [];
    const cookies = new Map<string, string>();
    for (let i = 0; i < 200; i++) {
      const r = await get(cyPort);
      expect(r.status).toBe(200);
      bodies.push(r.body);
      if (r.cookie) cookies.set(r.body, r.cookie);
    }
    const canaryShare = bodies.filter((b) => b === 'version cy-2.0.0').length / bodies.length;
    expect(canaryShare).toBeGreaterThanOrEqual(0.2);
    expect(canaryShare).toBeLessThanOrEqual(0.3);
    // A client with a cookie stays on its version, whichever it is.
    for (const version of ['cy-1.0.0', 'cy-2.0.0']) {
      const cookie = cookies.get(`version ${version}`)!;
      expect(cookie).toMatch(/^keelson-dev-cy=/);
      for (let i = 0; i < 20; i++) expect((await get(cyPort, { cookie })).body).toBe(`version ${version}`);
    }
    // Still paused: nothing moves without promote-rollout.
    expect(tracker.get('dev', 'cy')).toMatchObject({ phase: 'Paused', weight: 25 });
    const loop = trafficLoop(cyPort);
    const res = await promote('cy');
    expect(res.status).toBe(200);
    await eventAfter(seq, (e) => e.type === 'rollout.completed' && e.app === 'cy');
    await waitFor('cy synced', async () => (await appState('cy'))?.sync === 'Synced');
    await loop.stop();
    expect(loop.failed()).toBe(0);
    expect(await appState('cy')).toMatchObject({ version: '2.0.0', health: 'Healthy', replicas: { ready: 2, total: 2 } });
    expect((await get(cyPort)).body).toBe('version cy-2.0.0');
    expect((await promote('cy')).status).toBe(409);
  });

  it('canary: a failed analysis aborts, returns all traffic (sticky clients too) to stable at once, reported as Failed', async () => {
    const stable = await pids('cy');
    const seq = lastSeq();
    await deploy('cy', '3.0.0');
    await eventAfter(seq, (e) => e.type === 'rollout.paused' && e.app === 'cy');
    let canaryCookie: string | undefined;
    for (let i = 0; i < 20 && !canaryCookie; i++) {
      const r = await get(cyPort);
      if (r.body === 'version cy-3.0.0') canaryCookie = r.cookie;
    }
    expect(canaryCookie).toBeDefined();
    const loop = trafficLoop(cyPort);
    expect((await promote('cy')).status).toBe(200);
    const failed = await eventAfter(seq, (e) => e.type === 'rollout.analysis' && e.app === 'cy' && e.metric === '*');
    expect((failed as any).phase).toBe('Failed');
    const aborted = await eventAfter(seq, (e) => e.type === 'rollout.aborted' && e.app === 'cy');
    await waitFor('traffic after the abort', () => loop.seen.filter((s) => s.at > Date.parse(aborted.time)).length > 20);
    await loop.stop();
    const lastCanary = Math.max(...loop.seen.filter((s) => s.body === 'version cy-3.0.0').map((s) => s.at));
    // Every request answered after the failed analysis plus 2 s came from the stable version.
    expect(lastCanary - Date.parse(failed.time)).toBeLessThan(2000);
    expect(loop.seen.filter((s) => s.at > Date.parse(aborted.time)).every((s) => s.body === 'version cy-2.0.0')).toBe(true);
    expect(loop.errors).toEqual([]);
    expect((await get(cyPort, { cookie: canaryCookie! })).body).toBe('version cy-2.0.0');
    expect((aborted as any).reason).toMatch(/canary step 1 analysis failed: metric "errors" failed .*error rate 1 .*all traffic back on 2\.0\.0/);
    const st = await waitFor('cy Failed', async () => {
      const a = await appState('cy');
      return a?.sync === 'Failed' && a;
    });
    expect(st.version).toBe('2.0.0');
    expect(st.message).toContain('analysis failed');
    expect(tracker.get('dev', 'cy')).toMatchObject({ phase: 'Failed', weight: 0 });
    expect(await pids('cy')).toEqual(stable);
    await waitFor('Failed sync recorded', () => store.history({ env: 'dev', app: 'cy', limit: 1 })[0]?.result === 'Failed');
  });

  it('a new commit cancels a rollout that waits on a failing health gate and rolls forward at once', async () => {
    const seq = lastSeq();
    const crashing = await deploy('cy', '4.0.0');
    // The new version crash-loops; the rollout would wait 300 s for it to become ready.
    await eventAfter(seq, (e) => e.type === 'replica.restarted' && e.app === 'cy');
    const fixed = await deploy('cy', '5.0.0');
    const aborted = await eventAfter(seq, (e) => e.type === 'rollout.aborted' && e.app === 'cy');
    expect((aborted as any).revision).toBe(crashing);
    expect((aborted as any).reason).toContain(`superseded by revision ${fixed.slice(0, 7)}`);
    await eventAfter(aborted.seq, (e) => e.type === 'rollout.paused' && e.app === 'cy' && (e as any).revision === fixed);
    expect((await promote('cy', true)).status).toBe(200);
    await eventAfter(aborted.seq, (e) => e.type === 'rollout.completed' && e.app === 'cy');
    const st = await waitFor('cy 5.0.0 synced', async () => {
      const a = await appState('cy');
      return a?.sync === 'Synced' && a.version === '5.0.0' && a.health === 'Healthy' && a;
    });
    expect(st.revision).toBe(fixed);
    // The sync record is written when the whole environment's sync ends, just after the app reports Synced.
    await waitFor('sync recorded', () => store.history({ env: 'dev', app: 'cy', limit: 1 })[0]?.revision === fixed);
    expect(store.history({ env: 'dev', app: 'cy', limit: 2 }).map((h) => [h.revision, h.result])).toEqual([
      [fixed, 'Succeeded'],
      [crashing, 'Failed'],
    ]);
  });
});
