import { createHmac } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commitAll, gitInit, tempDir, waitFor, writeTree } from '../../test/helpers.js';
import { Engine } from '../engine/engine.js';
import { EventBus } from '../engine/events.js';
import { silentLogger } from '../log.js';
import { Metrics } from '../metrics/metrics.js';
import { Store } from '../store/store.js';
import { LocalTarget } from '../targets/local/local-target.js';
import { createApi } from './app.js';

/** The API in memory (Hono `app.request`) over a real engine, git repository and supervised process. */
describe('API', () => {
  const tmp = tempDir('keelson-api-');
  const secret = 's3cret-webhook';
  let engine: Engine;
  let target: LocalTarget;
  let store: Store;
  let api: ReturnType<typeof createApi>;

  beforeAll(async () => {
    const ops = join(tmp.dir, 'ops');
    writeTree(ops, {
      'apps/tick.yaml': `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: tick }
spec:
  version: "1"
  artifact: { path: ../bin }
  run: { command: ["node", "-e", "setInterval(() => {}, 1000)"] }
---
apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata: { name: dev }
spec:
  apps: { tick: {} }
`,
      'bin/README': 'inline app\n',
    });
    gitInit(ops);
    commitAll(ops, 'tick');
    const log = silentLogger();
    const state = join(tmp.dir, 'state');
    store = new Store(state);
    const bus = new EventBus();
    target = new LocalTarget({ stateDir: state, store, bus, log, requeue: () => undefined });
    engine = new Engine({ repo: ops, stateDir: state, log, store, bus, target, pollMs: 60_000 });
    const metrics = new Metrics(bus, { processes: () => 1, health: () => [] });
    api = createApi({ engine, store, metrics, log, webhookSecret: secret });
    await engine.start();
    await waitFor('tick running', async () => (await engine.status()).environments[0]?.apps[0]?.health === 'Healthy');
  });

  afterAll(async () => {
    await target.supervisor.stopAll();
    await engine.stop();
    store.close();
    tmp.cleanup();
  });

  it('answers status in the documented shape', async () => {
    const res = await api.request('/api/v1/status');
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(Object.keys(body)).toEqual(expect.arrayContaining(['revision', 'environments']));
    expect(body.environments[0]).toMatchObject({ name: 'dev', target: 'local' });
    expect(body.environments[0].apps[0]).toMatchObject({
      name: 'tick',
      version: '1',
      revision: body.revision,
      sync: 'Synced',
      health: 'Healthy',
      replicas: { desired: 1, ready: 1 },
    });
    expect(typeof body.environments[0].apps[0].message).toBe('string');
  });

  it('rejects unsigned and wrongly signed webhooks when a secret is set', async () => {
    const body = JSON.stringify({ ref: 'refs/heads/main' });
    const post = (headers: Record<string, string>) => api.request('/api/v1/webhooks/git', { method: 'POST', body, headers });
    expect((await post({})).status).toBe(401);
    expect((await post({ 'x-hub-signature-256': `sha256=${'0'.repeat(64)}` })).status).toBe(403);
    expect((await post({ 'x-gitlab-token': 'nope' })).status).toBe(403);
    const sig = createHmac('sha256', secret).update(body).digest('hex');
    const ok = await post({ 'x-hub-signature-256': `sha256=${sig}` });
    expect(ok.status).toBe(202);
    expect(await ok.json()).toEqual({ accepted: true, provider: 'github' });
    expect((await post({ 'x-gitlab-token': secret })).status).toBe(202);
  });

  it('limits webhook bodies', async () => {
    const res = await api.request('/api/v1/webhooks/git', { method: 'POST', body: 'x'.repeat(2 * 1024 * 1024) });
    expect(res.status).toBe(413);
  });

  it('names what is unknown and what is known', async () => {
    const res = await api.request('/api/v1/environments/nope/plan');
    expect(res.status).toBe(404);
    expect((await res.json()).message).toBe('unknown environment "nope" (known: dev)');
  });

  it('serves the plan, history and Prometheus metrics', async () => {
    const plan = await (await api.request('/api/v1/environments/dev/plan')).json();
    expect(plan.plan.steps).toEqual([expect.objectContaining({ app: 'tick', action: 'none' })]);
    // The app is Healthy a moment before the sync that started it is recorded.
    const history = await waitFor('first sync recorded', async () => {
      const h = await (await api.request('/api/v1/history?env=dev')).json();
      return h.syncs.length > 0 && h;
    });
    expect(history.syncs[0]).toMatchObject({ env: 'dev', result: 'Succeeded', summary: 'tick created' });
    const metrics = await (await api.request('/metrics')).text();
    for (const name of ['keelson_reconcile_duration_seconds', 'keelson_sync_total', 'keelson_drift_events_total', 'keelson_git_fetch_duration_seconds', 'keelson_supervised_processes', 'keelson_process_restarts_total']) {
      expect(metrics).toContain(name);
    }
    expect(metrics).toMatch(/keelson_sync_total\{env="dev",result="Succeeded"\} 1/);
  });
});
