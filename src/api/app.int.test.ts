import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEngine, tickRepo, type EngineHarness } from '../../test/engine-harness.js';
import { waitFor } from '../../test/helpers.js';
import type { Engine } from '../engine/engine.js';
import { silentLogger } from '../log.js';
import { Metrics } from '../metrics/metrics.js';
import { createApi } from './app.js';

/** The API in memory (Hono `app.request`) over a real engine, git repository and supervised process. */
describe('API', () => {
  const secret = 's3cret-webhook';
  let h: EngineHarness;
  let engine: Engine;
  let api: ReturnType<typeof createApi>;

  beforeAll(async () => {
    h = await startEngine(tickRepo, {
      prefix: 'keelson-api-',
      beforeStart: (parts) => {
        engine = parts.engine;
        const metrics = new Metrics(parts.bus, { processes: () => 1, health: () => [] });
        api = createApi({ engine, store: parts.store, metrics, log: silentLogger(), webhookSecret: secret });
      },
    });
    // The first sync is recorded just after the app turns healthy.
    await waitFor('first sync recorded', () => h.store.history({ env: 'dev' }).length > 0);
  });

  afterAll(() => h.stop());

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
