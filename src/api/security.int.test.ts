import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { startEngine, tickRepo, type EngineHarness } from '../../test/engine-harness.js';
import type { Engine } from '../engine/engine.js';
import { silentLogger } from '../log.js';
import { Metrics } from '../metrics/metrics.js';
import type { Store } from '../store/store.js';
import { createApi } from './app.js';
import { AuditLog } from './audit.js';
import { Authenticator, hashToken } from './auth.js';
import { findRouteDoc, openApiDocument, routeDocs } from './openapi.js';

/** Roles, audit, limits and the OpenAPI document, over a real engine, git repository and supervised process. */
describe('API security and OpenAPI', () => {
  const tokens = { admin: 'kls_admin_123', operator: 'kls_operator_123', viewer: 'kls_viewer_123' };
  let engine: Engine;
  let h: EngineHarness;
  let store: Store;
  let audit: AuditLog;
  let api: ReturnType<typeof createApi>;
  let readOnly: ReturnType<typeof createApi>;

  const as = (role: keyof typeof tokens | null, init: RequestInit = {}) => ({
    ...init,
    headers: { ...(role ? { authorization: `Bearer ${tokens[role]}` } : {}), ...(init.headers as Record<string, string>) },
  });

  /** Calls a documented route and parses the answer with the schema the document was generated from. */
  async function documented(method: 'GET' | 'POST', docPath: string, url: string, role: keyof typeof tokens, init: RequestInit = {}) {
    const doc = findRouteDoc(method, docPath);
    expect(doc, `${method} ${docPath} is documented`).toBeDefined();
    const res = await api.request(url, as(role, { ...init, method }));
    const spec = doc!.responses[res.status];
    expect(spec, `${method} ${docPath} answered ${res.status}, which the document does not list`).toBeDefined();
    if (spec.schema) {
      expect(res.headers.get('content-type')).toContain('application/json');
      const body = await res.json();
      const parsed = (spec.schema as z.ZodType).safeParse(body);
      expect(parsed.success, `${method} ${url}: ${parsed.success ? '' : parsed.error.message}`).toBe(true);
      return { status: res.status, body };
    }
    return { status: res.status, body: await res.text() };
  }

  beforeAll(async () => {
    h = await startEngine(tickRepo, {
      prefix: 'keelson-api-sec-',
      beforeStart: (parts) => {
        engine = parts.engine;
        store = parts.store;
        const log = silentLogger();
        const metrics = new Metrics(parts.bus, { processes: () => 1, health: () => [] });
        const auth = new Authenticator(Object.entries(tokens).map(([role, t]) => ({ name: `${role}-user`, role: role as 'admin', sha256: hashToken(t) })));
        audit = new AuditLog(store.db);
        api = createApi({ engine, store, metrics, log, auth, audit, version: '9.9.9', webhookRate: { burst: 3, perSecond: 0.01 } });
        readOnly = createApi({ engine, store, metrics, log });
      },
    });
  });

  afterAll(() => h.stop());

  it('declares a role for every route, and documents only routes that exist', () => {
    const registered = api.routes.filter((r) => r.method !== 'ALL').map((r) => `${r.method} ${r.path}`);
    const undeclared = registered.filter((k) => !routeDocs.some((d) => `${d.method} ${d.path}` === k));
    expect(undeclared, 'add these routes to routeDocs in src/api/openapi.ts (role, summary, responses)').toEqual([]);
    const absent = routeDocs.map((d) => `${d.method} ${d.path}`).filter((k) => !registered.includes(k));
    expect(absent).toEqual([]);
  });

  it('needs a token when tokens are configured, and the right role for each route', async () => {
    const none = await api.request('/api/v1/status');
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="keelson"');
    expect((await api.request('/api/v1/status', { headers: { authorization: 'Bearer nope' } })).status).toBe(401);
    expect((await api.request('/api/v1/status', as('viewer'))).status).toBe(200);
    const denied = await api.request('/api/v1/environments/dev/sync', as('viewer', { method: 'POST' }));
    expect(denied.status).toBe(403);
    expect(await denied.json()).toEqual({ error: 'Forbidden', message: 'token "viewer-user" has role viewer; this needs operator' });
    expect((await api.request('/api/v1/audit', as('viewer'))).status).toBe(403);
    expect((await api.request('/healthz')).status).toBe(200);
    expect((await api.request('/')).status).toBe(200);
    expect((await api.request('/api/v1/openapi.json')).status).toBe(200);
  });

  it('is read-only for everyone without tokens', async () => {
    expect((await readOnly.request('/api/v1/status')).status).toBe(200);
    const who = await (await readOnly.request('/api/v1/whoami')).json();
    expect(who).toEqual({ name: 'anonymous', role: 'viewer', anonymous: true, authEnabled: false });
    const res = await readOnly.request('/api/v1/environments/dev/sync', { method: 'POST' });
    expect(res.status).toBe(403);
    expect((await res.json()).message).toMatch(/^Keelson is read-only: no API tokens are configured/);
  });

  it('answers every documented route in the documented shape', async () => {
    await documented('GET', '/healthz', '/healthz', 'viewer');
    await documented('GET', '/api/v1/whoami', '/api/v1/whoami', 'operator');
    const status = await documented('GET', '/api/v1/status', '/api/v1/status', 'viewer');
    expect(status.body.environments[0].apps[0]).toMatchObject({ name: 'tick', sync: 'Synced', health: 'Healthy' });
    const matrix = await documented('GET', '/api/v1/matrix', '/api/v1/matrix?q=ti&limit=10', 'viewer');
    expect(matrix.body).toMatchObject({ total: 1, rows: [{ app: 'tick', cells: { dev: { version: '1', sync: 'Synced', health: 'Healthy', commitMessage: 'initial' } } }] });
    expect((await documented('GET', '/api/v1/matrix', '/api/v1/matrix?limit=9999', 'viewer')).status).toBe(400);
    await documented('GET', '/api/v1/environments/:env/plan', '/api/v1/environments/dev/plan', 'viewer');
    expect((await documented('GET', '/api/v1/environments/:env/plan', '/api/v1/environments/nope/plan', 'viewer')).status).toBe(404);
    const detail = await documented('GET', '/api/v1/environments/:env/apps/:app', '/api/v1/environments/dev/apps/tick', 'viewer');
    expect(detail.body).toMatchObject({ env: 'dev', paused: false, commitMessage: 'initial' });
    expect((await documented('GET', '/api/v1/environments/:env/apps/:app', '/api/v1/environments/dev/apps/nope', 'viewer')).status).toBe(404);
    const step = await documented('GET', '/api/v1/environments/:env/apps/:app/plan', '/api/v1/environments/dev/apps/tick/plan', 'viewer');
    expect(step.body.step).toMatchObject({ app: 'tick', action: 'none' });
    await documented('GET', '/api/v1/environments/:env/apps/:app/events', '/api/v1/environments/dev/apps/tick/events', 'viewer');
    await documented('GET', '/api/v1/history', '/api/v1/history?env=dev', 'viewer');
    await documented('POST', '/api/v1/environments/:env/sync', '/api/v1/environments/dev/sync', 'operator', { body: JSON.stringify({ app: 'tick' }), headers: { 'content-type': 'application/json' } });
    await documented('GET', '/api/v1/audit', '/api/v1/audit?limit=5', 'admin');
    const doc = await (await api.request('/api/v1/openapi.json')).json();
    expect(doc).toEqual(JSON.parse(JSON.stringify(openApiDocument('9.9.9'))));
    expect(doc.paths['/api/v1/environments/{env}/sync'].post['x-keelson-role']).toBe('operator');
    expect(doc.paths['/api/v1/matrix'].get.responses['200'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/Matrix' });
    expect(doc.components.schemas.Matrix.properties.rows.type).toBe('array');
    // Every reference resolves inside the document.
    for (const ref of JSON.stringify(doc).matchAll(/"\$ref":"([^"]+)"/g)) expect(doc.components.schemas[ref[1].replace('#/components/schemas/', '')], ref[1]).toBeDefined();
  });

  it('pauses an app: reconcile leaves it alone and it reports Suspended, until resumed', async () => {
    const paused = await documented('POST', '/api/v1/environments/:env/apps/:app/pause', '/api/v1/environments/dev/apps/tick/pause', 'operator');
    expect(paused.body).toEqual({ env: 'dev', app: 'tick', paused: true, changed: true });
    const status = await (await api.request('/api/v1/status', as('viewer'))).json();
    expect(status.environments[0].apps[0].health).toBe('Suspended');
    expect(engine.pauses.withoutPaused(await engine.plan('dev')).steps).toEqual([]);
    const resumed = await documented('POST', '/api/v1/environments/:env/apps/:app/resume', '/api/v1/environments/dev/apps/tick/resume', 'operator');
    expect(resumed.body).toMatchObject({ paused: false, changed: true });
    await documented('POST', '/api/v1/environments/:env/pause', '/api/v1/environments/dev/pause', 'operator');
    expect((await engine.status()).environments[0].apps[0].health).toBe('Suspended');
    await documented('POST', '/api/v1/environments/:env/resume', '/api/v1/environments/dev/resume', 'operator');
    expect((await engine.status()).environments[0].apps[0].health).toBe('Healthy');
  });

  it('writes every action to the audit log: who, what, when, result', async () => {
    await api.request('/api/v1/environments/dev/apps/tick/pause', as('viewer', { method: 'POST' }));
    const entries = audit.list({ limit: 20 });
    expect(entries[0]).toMatchObject({ actor: 'viewer-user', role: 'viewer', action: 'pause', target: '/api/v1/environments/dev/apps/tick/pause', result: 'denied', status: 403 });
    expect(entries.find((e) => e.action === 'resume' && e.target === '/api/v1/environments/dev/resume')).toMatchObject({ actor: 'operator-user', role: 'operator', result: 'succeeded', status: 200 });
    expect(entries.find((e) => e.action === 'sync')).toMatchObject({ actor: 'operator-user', result: 'succeeded', message: expect.stringMatching(/^(Unchanged|Succeeded)/) });
    expect(entries.every((e) => !Object.values(tokens).some((t) => JSON.stringify(e).includes(t)))).toBe(true);
    const listed = await (await api.request('/api/v1/audit?limit=2', as('operator'))).json();
    expect(listed.entries).toHaveLength(2);
  });

  it('limits request bodies and rate-limits webhooks per client', async () => {
    const big = await api.request('/api/v1/environments/dev/sync', as('operator', { method: 'POST', body: 'x'.repeat(100 * 1024), headers: { 'content-type': 'application/json' } }));
    expect(big.status).toBe(413);
    const hook = () => api.request('/api/v1/webhooks/git', { method: 'POST', body: '{}' });
    for (let i = 0; i < 3; i++) expect((await hook()).status).toBe(202);
    const limited = await hook();
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    // Rate-limited requests are refused before they count as actions, so a flood cannot flood the audit log.
    expect(audit.list({ limit: 1, action: 'webhook' })[0]).toMatchObject({ actor: 'webhook', role: null, result: 'succeeded', status: 202 });
  });
});
