/** API of the GitOps rollback done by the engine: what a rollback would restore, and the rollback itself. */
import type { Hono } from 'hono';
import { errorMessage } from '../core/errors.js';
import type { EventBus } from '../core/events.js';
import { OpsWriteError, type EngineWriter } from '../opsrepo/engine-writer.js';
import { RollbackRefused, rollbackThroughGit, suggestedTarget } from '../rollback/engine-rollback.js';
import type { Store } from '../store/store.js';
import { principalOf } from './auth.js';
import { rollbackRequestSchema } from './rollback-schemas.js';

export interface RollbackRouteDeps {
  /** Absent when the engine has no writer (then rollback is not available). */
  writer?: EngineWriter;
  store: Store;
  bus: EventBus;
  knownEnv: (env: string) => void;
}

const problem = (status: number, error: string, message: string) => Response.json({ error, message }, { status });

export function rollbackRoutes(app: Hono, d: RollbackRouteDeps): void {
  app.get('/api/v1/environments/:env/apps/:app/rollback', async (c) => {
    const { env, app: name } = c.req.param();
    d.knownEnv(env);
    const st = d.writer ? await d.writer.status() : { writable: false, reason: 'this engine does not write to the ops repository' };
    const t = suggestedTarget(d.store, env, name);
    return c.json({ ...st, target: t ? { revision: t.revision, version: t.version, at: t.at } : null });
  });

  app.post('/api/v1/environments/:env/apps/:app/rollback', async (c) => {
    const { env, app: name } = c.req.param();
    d.knownEnv(env);
    const parsed = rollbackRequestSchema.safeParse(await c.req.json().catch(() => ({})));
    if (!parsed.success) return problem(400, 'BadRequest', `invalid body: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')}`);
    if (!d.writer) return problem(409, 'Conflict', 'this engine does not write to the ops repository');
    const who = principalOf(c);
    try {
      const r = await rollbackThroughGit({ writer: d.writer, store: d.store, bus: d.bus }, { env, app: name, ...parsed.data, actor: who?.name ?? 'unknown' });
      return c.json({ result: 'Committed' as const, message: r.message, commit: r.commit, branch: r.branch, to: r.to, versionFrom: r.versionFrom, versionTo: r.versionTo });
    } catch (err) {
      if (err instanceof RollbackRefused || err instanceof OpsWriteError) return problem(409, 'Conflict', errorMessage(err));
      throw err;
    }
  });
}
