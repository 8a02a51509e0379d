import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import { streamSSE, stream } from 'hono/streaming';
import type { Engine } from '../engine/engine.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { verifyWebhook } from '../source/webhook.js';
import type { Store } from '../store/store.js';
import { appRevisions } from '../rollback/revisions.js';
import { followLog, tailLines } from '../targets/local/logs.js';
import { installUi } from '../ui/serve.js';
import { AuditLog } from './audit.js';
import { Authenticator } from './auth.js';
import { installDashboardApi } from './dashboard-api.js';
import { environmentRoutes } from './environment-routes.js';
import { rolloutRoutes } from './rollout-routes.js';
import { rollbackRoutes } from './rollback-routes.js';
import type { EngineWriter } from '../opsrepo/engine-writer.js';
import { installSecurity } from './security.js';
import { TerminalError } from '../core/errors.js';
import { GitError } from '../source/git.js';
import { BoundedSink } from './bounded-sink.js';
import type { HostCheckOptions } from './host-check.js';
import { Peers } from './peers.js';

export interface ApiDeps {
  engine: Engine;
  store: Store;
  metrics: Metrics;
  log: Logger;
  webhookSecret?: string;
  /** Bearer tokens; none configured means read-only (viewer) for everyone. */
  auth?: Authenticator;
  audit?: AuditLog;
  version?: string;
  webhookRate?: { burst: number; perSecond: number };
  /** Commits to the ops repository (GitOps rollback); absent means rollback through the API is unavailable. */
  writer?: EngineWriter;
  /** Where the API listens and further host names it answers to (`keelson up` sets it: DNS rebinding protection). */
  hosts?: HostCheckOptions;
  /** Failed authentications per client address and minute before 429. Default 10. */
  authFailuresPerMinute?: number;
  /** Bytes an event stream or log follow may fall behind before the slow client is dropped. Default 1 MiB. */
  streamBufferBytes?: number;
  /** Several engines (claims): requests about environments run by another engine go there (peers.ts). */
  peers?: Peers;
}

/** Closes the client's connection at once (a slow stream reader that fell too far behind). */
function dropClient(c: Context): void {
  const env = c.env as { outgoing?: { destroy(): void } } | undefined;
  env?.outgoing?.destroy();
}

/** A problem answered as JSON: `{error, message}` with an HTTP status. */
function problem(status: 400 | 404 | 409 | 413, message: string): HTTPException {
  return new HTTPException(status, { res: Response.json({ error: statusText[status], message }, { status }) });
}
const statusText = { 400: 'BadRequest', 404: 'NotFound', 409: 'Conflict', 413: 'PayloadTooLarge' } as const;

/** The HTTP API: thin routes over the engine and the store. */
export function createApi(d: ApiDeps): Hono {
  const app = new Hono();
  const { engine } = d;

  app.onError((err, c) => {
    if (err instanceof HTTPException) return err.getResponse();
    d.log.error({ err: err.message, path: c.req.path }, 'api request failed');
    return c.json({ error: 'Internal', message: err.message }, 500);
  });
  const auth = d.auth ?? new Authenticator([]);
  const audit = d.audit ?? new AuditLog(d.store.db);
  installSecurity(app, { auth, audit, log: d.log, webhookRate: d.webhookRate, hosts: d.hosts, authFailuresPerMinute: d.authFailuresPerMinute });
  const peers = d.peers;
  if (peers) app.use('/api/*', peers.middleware((env) => engine.environmentNames().includes(env)));
  /** Every environment's status, each from the engine that runs it (this engine's own when asked by another one). */
  const statusAll = async (c: Context, env?: string) => {
    const local = await engine.status(env);
    return peers && !Peers.forwarded(c) ? peers.mergeStatus(local, c.req.header('authorization')) : local;
  };

  app.get('/healthz', (c) => c.json({ ok: true }));

  app.get('/metrics', async (c) => {
    return c.body(await d.metrics.registry.metrics(), 200, { 'content-type': d.metrics.registry.contentType });
  });

  app.get('/api/v1/status', async (c) => {
    const env = c.req.query('env') || undefined;
    return c.json(await statusAll(c, env));
  });

  const knownEnv = (env: string) => {
    if (!engine.environmentNames().includes(env)) {
      throw problem(404, `unknown environment "${env}" (known: ${engine.environmentNames().join(', ') || 'none'})`);
    }
  };

  app.get('/api/v1/environments/:env/plan', async (c) => {
    const env = c.req.param('env');
    knownEnv(env);
    const plan = await engine.plan(env);
    return c.json({ plan, text: engine.formatPlan(plan) });
  });

  app.get('/api/v1/preview', async (c) => {
    const revision = c.req.query('revision');
    if (!revision) throw problem(400, '"revision" is required: a branch, tag or commit sha of the ops repository');
    try {
      return c.json(await engine.preview(revision, { env: c.req.query('env') || undefined }));
    } catch (err) {
      if (err instanceof TerminalError || err instanceof GitError) throw problem(/unknown environment/.test(err.message) ? 404 : 400, err.message);
      throw err;
    }
  });

  app.post('/api/v1/environments/:env/sync', async (c) => {
    const env = c.req.param('env');
    knownEnv(env);
    const body = (await c.req.json().catch(() => ({}))) as { app?: string; force?: boolean; confirmPrune?: boolean } | null;
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw problem(400, 'the body must be a JSON object, e.g. {"app": "web"}, or empty');
    if (body.app !== undefined && typeof body.app !== 'string') throw problem(400, '"app" must be a string');
    if (body.force !== undefined && typeof body.force !== 'boolean') throw problem(400, '"force" must be a boolean');
    if (body.confirmPrune !== undefined && typeof body.confirmPrune !== 'boolean') throw problem(400, '"confirmPrune" must be a boolean');
    return c.json(await engine.sync(env, body.app, { force: body.force, confirmPrune: body.confirmPrune }));
  });

  app.get('/api/v1/history', async (c) => {
    const raw = c.req.query('limit');
    const limit = raw === undefined || raw === '' ? 50 : Number(raw);
    if (!Number.isInteger(limit)) throw problem(400, `"limit" must be a whole number (1 to 1000), not ${JSON.stringify(raw).slice(0, 40)}`);
    const q = { env: c.req.query('env') || undefined, app: c.req.query('app') || undefined, limit: Math.min(Math.max(limit, 1), 1000) };
    const syncs = d.store.history(q);
    if (q.env || !peers || Peers.forwarded(c)) return c.json({ syncs });
    const search = new URLSearchParams({ limit: String(q.limit), ...(q.app ? { app: q.app } : {}) });
    return c.json({ syncs: await peers.mergeHistory(syncs, engine.environmentNames(), `?${search}`, q.limit, c.req.header('authorization')) });
  });

  app.get('/api/v1/environments/:env/apps/:app/revisions', (c) => {
    return c.json(appRevisions(d.store, c.req.param('env'), c.req.param('app')));
  });

  app.get('/api/v1/environments/:env/apps/:app/events', (c) => {
    return c.json({ events: d.store.events({ env: c.req.param('env'), app: c.req.param('app'), limit: 100 }) });
  });

  app.get('/api/v1/environments/:env/apps/:app/logs', async (c) => {
    const { env, app: name } = c.req.param();
    const files = engine.logsOf(env, name);
    if (files.length === 0) throw problem(404, `no logs for app "${name}" in environment "${env}"; is it deployed? (see keelson status)`);
    const n = Math.min(Number(c.req.query('tail') ?? 100), 10_000);
    const follow = c.req.query('follow') === '1' || c.req.query('follow') === 'true';
    const prefix = files.length > 1;
    const initial: string[] = [];
    for (const f of files) for (const line of await tailLines(f.path, n).catch(() => [])) initial.push(prefix ? `[${f.replica}] ${line}` : line);
    if (!follow) return c.text(engine.maskLog(initial.join('\n') + (initial.length ? '\n' : '')));
    return stream(c, async (s) => {
      const ac = new AbortController();
      s.onAbort(() => ac.abort());
      // Backpressure: one write at a time; a client that falls too far behind is dropped.
      const sink = new BoundedSink((chunk) => s.write(chunk), {
        maxBytes: d.streamBufferBytes,
        onOverflow: (bytes) => {
          d.log.warn({ env, app: name, bytes }, 'log follow client too slow; dropped');
          ac.abort();
          dropClient(c);
        },
      });
      ac.signal.addEventListener('abort', () => sink.close());
      if (initial.length) sink.push(engine.maskLog(initial.join('\n') + '\n'));
      for (const f of files) {
        followLog(f.path, (lines) => void sink.push(engine.maskLog(lines.map((l) => (prefix ? `[${f.replica}] ${l}` : l)).join('\n') + '\n')), ac.signal);
      }
      await new Promise<void>((resolve) => ac.signal.addEventListener('abort', () => resolve()));
    });
  });

  app.get('/api/v1/events', (c) => {
    return streamSSE(c, async (s) => {
      let closed = false;
      let wake: (() => void) | undefined;
      const close = () => {
        closed = true;
        off();
        sink.close();
        wake?.();
      };
      // Backpressure: one write at a time; a client that falls too far behind is dropped.
      const sink = new BoundedSink((chunk) => s.write(chunk), {
        maxBytes: d.streamBufferBytes,
        onOverflow: (bytes) => {
          d.log.warn({ bytes }, 'event stream client too slow; dropped');
          close();
          dropClient(c);
        },
      });
      const frame = (event: string, data: string, id?: string) => `event: ${event}\n${id ? `id: ${id}\n` : ''}data: ${data}\n\n`;
      const off = engine.bus.subscribe((e) => {
        if (!closed) sink.push(frame(e.type, JSON.stringify(e), String(e.seq)));
      });
      s.onAbort(close);
      while (!closed) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 15_000).unref();
        });
        if (!closed) sink.push(frame('ping', '{}'));
      }
    });
  });

  app.post(
    '/api/v1/webhooks/git',
    bodyLimit({ maxSize: 1024 * 1024, onError: () => { throw problem(413, 'webhook body larger than 1 MiB'); } }),
    async (c) => {
      const body = Buffer.from(await c.req.arrayBuffer());
      const headers: Record<string, string> = {};
      c.req.raw.headers.forEach((v, k) => (headers[k.toLowerCase()] = v));
      const verdict = verifyWebhook({ headers, body }, d.webhookSecret);
      if (!verdict.ok) {
        d.log.warn({ reason: verdict.reason }, 'webhook rejected');
        return c.json({ error: 'Unauthorized', message: verdict.reason }, verdict.status);
      }
      // Answer at once; the fetch and the syncs it starts run on their own (also on the engines running the other
      // environments, which get the webhook passed on).
      void engine.refresh();
      if (peers && !Peers.forwarded(c)) void peers.relayWebhook(c.req.raw.headers, body, engine.environmentNames());
      return c.json({ accepted: true, provider: verdict.provider }, 202);
    },
  );

  environmentRoutes(app, { engine, store: d.store, statusAll });
  rolloutRoutes(app, { bus: engine.bus, knownEnv });
  rollbackRoutes(app, { writer: d.writer, store: d.store, bus: engine.bus, knownEnv });
  installDashboardApi(app, { engine, store: d.store, auth, audit, version: d.version ?? '0.0.0', ...(peers ? { peers } : {}) });
  installUi(app);
  app.notFound((c) => c.json({ error: 'NotFound', message: `no route ${c.req.method} ${c.req.path}` }, 404));
  return app;
}
