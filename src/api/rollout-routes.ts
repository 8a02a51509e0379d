/** API of progressive rollouts: the state of an app's rollout, and promote-rollout. */
import type { Hono } from 'hono';
import type { EventBus } from '../core/events.js';
import { RolloutTracker } from '../rollout/tracker.js';

export interface RolloutRouteDeps {
  bus: EventBus;
  /** Throws the API's 404 problem for an unknown environment. */
  knownEnv: (env: string) => void;
}

export function rolloutRoutes(app: Hono, d: RolloutRouteDeps): RolloutTracker {
  const tracker = new RolloutTracker(d.bus);

  app.get('/api/v1/environments/:env/apps/:app/rollout', (c) => {
    const { env, app: name } = c.req.param();
    d.knownEnv(env);
    const state = tracker.get(env, name);
    if (!state) return c.json({ error: 'NotFound', message: `no progressive rollout of app "${name}" in environment "${env}" since the engine started` }, 404);
    return c.json(state);
  });

  app.post('/api/v1/environments/:env/apps/:app/rollout/promote', async (c) => {
    const { env, app: name } = c.req.param();
    d.knownEnv(env);
    const body = (await c.req.json().catch(() => ({}))) as { full?: unknown } | null;
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      return c.json({ error: 'BadRequest', message: 'the body must be a JSON object, e.g. {"full": true}, or empty' }, 400);
    }
    if (body.full !== undefined && typeof body.full !== 'boolean') return c.json({ error: 'BadRequest', message: '"full" must be a boolean' }, 400);
    if (!tracker.isActive(env, name)) {
      const s = tracker.get(env, name);
      const why = s ? `its last rollout (${s.from} → ${s.to}) is ${s.phase}` : 'no rollout of it is under way';
      return c.json({ error: 'Conflict', message: `nothing to promote for app "${name}" in environment "${env}": ${why}` }, 409);
    }
    const before = tracker.get(env, name)!;
    d.bus.publish({ type: 'rollout.promoteRequested', env, app: name, full: body.full === true });
    return c.json({ promoted: true, full: body.full === true, rollout: before });
  });

  return tracker;
}
