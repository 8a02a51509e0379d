/** API routes of environments-as-a-feature: `where`, one-off runs (`keelson run`) and Helm tests (`keelson test`). */
import type { Context, Hono } from 'hono';
import { stream } from 'hono/streaming';
import { TerminalError } from '../core/errors.js';
import type { Engine, StatusView } from '../engine/engine.js';
import { whereIs } from '../environments/where.js';
import type { RunFrame } from '../run/one-off.js';
import type { Store } from '../store/store.js';

export function environmentRoutes(app: Hono, d: { engine: Engine; store: Store; statusAll: (c: Context) => Promise<StatusView> }): void {
  const { engine } = d;

  app.get('/api/v1/apps/:app/where', async (c) => c.json(whereIs(c.req.param('app'), await d.statusAll(c), d.store)));

  /** `keelson test`: runs the app's Helm test hooks against live; answers the report (ok, and each test with its log). */
  app.post('/api/v1/environments/:env/apps/:app/test', async (c) => {
    const { env, app: name } = c.req.param();
    if (!engine.environmentNames().includes(env)) {
      return c.json({ error: 'NotFound', message: `unknown environment "${env}" (known: ${engine.environmentNames().join(', ') || 'none'})` }, 404);
    }
    try {
      return c.json(await engine.helmTests(env, name));
    } catch (err) {
      if (err instanceof TerminalError) return c.json({ error: 'Conflict', message: err.message }, 409);
      throw err;
    }
  });

  /**
   * Runs `{argv, timeoutSeconds?}` in the app's current release. The answer streams NDJSON frames
   * (`{stream, data}` output chunks, then one `{exit}` or `{error}`); a client that disconnects kills the process.
   */
  app.post('/api/v1/environments/:env/apps/:app/run', async (c) => {
    const { env, app: name } = c.req.param();
    if (!engine.environmentNames().includes(env)) {
      return c.json({ error: 'NotFound', message: `unknown environment "${env}" (known: ${engine.environmentNames().join(', ') || 'none'})` }, 404);
    }
    const body = (await c.req.json().catch(() => null)) as { argv?: unknown; timeoutSeconds?: unknown } | null;
    const argv = body?.argv;
    if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string') || argv[0] === '') {
      return c.json({ error: 'BadRequest', message: '"argv" must be a non-empty array of strings, e.g. {"argv": ["node", "migrate.js"]}' }, 400);
    }
    const timeout = typeof body?.timeoutSeconds === 'number' && body.timeoutSeconds > 0 ? body.timeoutSeconds * 1000 : undefined;
    c.header('content-type', 'application/x-ndjson');
    return stream(c, async (s) => {
      const ac = new AbortController();
      s.onAbort(() => ac.abort());
      const send = (f: RunFrame) => void s.write(`${JSON.stringify(f)}\n`);
      try {
        const r = await engine.runOnce(env, name, argv as string[], {
          sink: { stdout: (b) => send({ stream: 'stdout', data: b.toString('utf8') }), stderr: (b) => send({ stream: 'stderr', data: b.toString('utf8') }) },
          signal: ac.signal,
          timeoutMs: timeout,
        });
        send({ exit: { code: r.code, signal: r.signal, durationMs: r.durationMs } });
      } catch (err) {
        send({ error: err instanceof TerminalError ? err.message : `one-off failed: ${(err as Error).message}` });
      }
    });
  });
}
