import type { Context, Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { z } from 'zod';
import type { AppStatusView, Engine, StatusView } from '../engine/engine.js';
import type { Store } from '../store/store.js';
import type { AuditLog } from './audit.js';
import { principalOf, type Authenticator } from './auth.js';
import { openApiDocument } from './openapi.js';
import { Peers } from './peers.js';
import { auditQuerySchema, matrixQuerySchema, type matrixCellSchema, type matrixSchema } from './schemas.js';

type Cell = z.infer<typeof matrixCellSchema>;
type Matrix = z.infer<typeof matrixSchema>;

export interface DashboardApiDeps {
  engine: Engine;
  store: Store;
  auth: Authenticator;
  audit: AuditLog;
  version: string;
  /** Several engines: the matrix shows each environment as the engine running it sees it (peers.ts). */
  peers?: Peers;
}

function notFound(message: string): HTTPException {
  return new HTTPException(404, { res: Response.json({ error: 'NotFound', message }, { status: 404 }) });
}

function badRequest(message: string): HTTPException {
  return new HTTPException(400, { res: Response.json({ error: 'BadRequest', message }, { status: 400 }) });
}

const firstLine = (s: string) => s.split('\n', 1)[0];

/**
 * The matrix's notice for an environment this engine stands by for: none when the engine running it answered (the
 * matrix shows its apps, as on every replica behind one Service), else the claim and why that engine did not answer.
 */
function standbyNotice(e: StatusView['environments'][number]): string | null {
  if (e.claim?.state !== 'Standby') return null;
  if (e.peer && !e.peer.error) return null;
  return e.peer?.error ? `${e.claim.message}; ${e.peer.error}` : e.claim.message;
}

/**
 * A snapshot of every environment × app, rebuilt lazily after an event: the matrix endpoint filters and pages it,
 * so a page of a 10,000-app matrix costs a filter over an array, not a status of every target.
 */
class MatrixSnapshot {
  private current?: Promise<{ status: StatusView; cells: Map<string, Record<string, Cell>>; names: string[] }>;
  /** Until when (monotonic) a snapshot with other engines' environments is used: their events do not reach this engine. */
  private freshUntil = Infinity;
  private readonly commitMessages = new Map<string, string | null>();

  constructor(private readonly d: DashboardApiDeps) {
    d.engine.bus.subscribe(() => (this.current = undefined));
  }

  /** `authorization`: the caller's, passed on to other engines (every viewer sees the same matrix). */
  get(authorization?: string, forwarded = false) {
    if (forwarded) return this.build(authorization, true);
    if (performance.now() > this.freshUntil) this.current = undefined;
    this.current ??= this.build(authorization).catch((err) => {
      this.current = undefined;
      throw err;
    });
    return this.current;
  }

  async commitMessage(revision: string | null): Promise<string | null> {
    if (!revision) return null;
    if (!this.commitMessages.has(revision)) {
      const msg = await this.d.engine.source.commitInfo(revision).then((i) => firstLine(i.message), () => null);
      if (this.commitMessages.size > 1000) this.commitMessages.clear();
      this.commitMessages.set(revision, msg);
    }
    return this.commitMessages.get(revision) ?? null;
  }

  private async build(authorization?: string, forwarded = false) {
    const local = await this.d.engine.status();
    const status = this.d.peers && !forwarded ? await this.d.peers.mergeStatus(local, authorization) : local;
    if (!forwarded) this.freshUntil = status.environments.some((e) => e.peer) ? performance.now() + 2_000 : Infinity;
    const applied = new Map(this.d.store.inventory().map((r) => [`${r.env}/${r.app}`, r.appliedAt]));
    const revisions = new Set<string>();
    for (const e of status.environments) for (const a of e.apps) if (a.revision) revisions.add(a.revision);
    for (const r of revisions) await this.commitMessage(r);
    const cells = new Map<string, Record<string, Cell>>();
    for (const e of status.environments) {
      for (const a of e.apps) {
        let row = cells.get(a.name);
        if (!row) cells.set(a.name, (row = {}));
        row[e.name] = this.cellOf(e.name, a, e.peer ? null : (applied.get(`${e.name}/${a.name}`) ?? null));
      }
    }
    const names = [...cells.keys()].sort();
    return { status, cells, names };
  }

  private cellOf(env: string, a: AppStatusView, since: string | null): Cell {
    return {
      version: a.version,
      desiredVersion: a.desiredVersion,
      sync: a.sync,
      health: a.health,
      revision: a.revision,
      commitMessage: a.revision ? (this.commitMessages.get(a.revision) ?? null) : null,
      message: firstLine(a.message),
      since,
      paused: a.health === 'Suspended', // paused, as the engine running the environment says
      ready: a.replicas.ready,
      desired: a.replicas.desired,
    };
  }
}

/** The routes the dashboard needs beyond the core API: matrix, app detail, pause/resume, audit, whoami, OpenAPI. */
export function installDashboardApi(app: Hono, d: DashboardApiDeps): void {
  const { engine } = d;
  const matrix = new MatrixSnapshot(d);
  const knownEnv = (env: string) => {
    if (!engine.environmentNames().includes(env)) {
      throw notFound(`unknown environment "${env}" (known: ${engine.environmentNames().join(', ') || 'none'})`);
    }
  };
  const appStatus = async (env: string, name: string) => {
    knownEnv(env);
    const status = await engine.status(env);
    const a = status.environments[0]?.apps.find((x) => x.name === name);
    if (!a) throw notFound(`no app "${name}" in environment "${env}" (see keelson status --env ${env})`);
    return a;
  };

  app.get('/api/v1/openapi.json', (c) => c.json(openApiDocument(d.version)));

  app.get('/api/v1/whoami', (c) => {
    const p = principalOf(c)!;
    return c.json({ name: p.name, role: p.role, anonymous: p.anonymous, authEnabled: d.auth.enabled });
  });

  app.get('/api/v1/matrix', async (c) => {
    const parsed = matrixQuerySchema.safeParse(c.req.query());
    if (!parsed.success) throw badRequest(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
    const q = parsed.data;
    const snap = await matrix.get(c.req.header('authorization'), Peers.forwarded(c));
    const envs = snap.status.environments.filter((e) => !q.env || e.name === q.env);
    const needle = q.q?.toLowerCase();
    const counts: Matrix['counts'] = { sync: {}, health: {} };
    const matching: string[] = [];
    for (const name of snap.names) {
      if (needle && !name.toLowerCase().includes(needle)) continue;
      const row = snap.cells.get(name)!;
      const shown = envs.map((e) => row[e.name]).filter(Boolean);
      if (shown.length === 0) continue;
      if (q.sync && !shown.some((cell) => cell.sync === q.sync)) continue;
      if (q.health && !shown.some((cell) => cell.health === q.health)) continue;
      matching.push(name);
      for (const cell of shown) {
        counts.sync[cell.sync] = (counts.sync[cell.sync] ?? 0) + 1;
        counts.health[cell.health] = (counts.health[cell.health] ?? 0) + 1;
      }
    }
    const offset = q.offset ?? 0;
    const limit = q.limit ?? 100;
    const rows = matching.slice(offset, offset + limit).map((name) => {
      const row = snap.cells.get(name)!;
      const cells: Record<string, Cell> = {};
      for (const e of envs) if (row[e.name]) cells[e.name] = row[e.name];
      return { app: name, cells };
    });
    const body: Matrix = {
      revision: snap.status.revision,
      commit: snap.status.commit,
      environments: envs.map((e) => ({ name: e.name, target: e.target, paused: e.paused ?? engine.pauses.isPaused(e.name), syncing: e.syncing, error: e.error?.message ?? null, standby: standbyNotice(e) })),
      total: matching.length,
      offset,
      limit,
      rows,
      counts,
    };
    return c.json(body);
  });

  app.get('/api/v1/environments/:env/apps/:app', async (c) => {
    const { env, app: name } = c.req.param();
    const a = await appStatus(env, name);
    const inv = d.store.inventory(env).find((r) => r.app === name);
    return c.json({
      env,
      app: a,
      paused: engine.pauses.isAppPaused(env, name),
      environmentPaused: engine.pauses.isPaused(env),
      appliedAt: inv?.appliedAt ?? null,
      commitMessage: await matrix.commitMessage(a.revision),
    });
  });

  app.get('/api/v1/environments/:env/apps/:app/plan', async (c) => {
    const { env, app: name } = c.req.param();
    knownEnv(env);
    const plan = await engine.plan(env);
    const step = plan.steps.find((s) => s.app === name) ?? null;
    const text = step ? engine.formatPlan({ ...plan, steps: [step] }) : `${name} is not declared or deployed in ${env}`;
    return c.json({ step, text, paused: engine.pauses.isPaused(env, name) });
  });

  const pauseRoute = (paused: boolean, withApp: boolean) => async (c: Context) => {
    const env = c.req.param('env')!;
    const name = withApp ? c.req.param('app')! : undefined;
    if (name) await appStatus(env, name);
    else knownEnv(env);
    const changed = paused ? engine.pauses.pause(env, name) : engine.pauses.resume(env, name);
    if (!paused) engine.requeue(env);
    return c.json({ env, app: name ?? null, paused, changed });
  };
  app.post('/api/v1/environments/:env/pause', pauseRoute(true, false));
  app.post('/api/v1/environments/:env/resume', pauseRoute(false, false));
  app.post('/api/v1/environments/:env/apps/:app/pause', pauseRoute(true, true));
  app.post('/api/v1/environments/:env/apps/:app/resume', pauseRoute(false, true));

  app.get('/api/v1/audit', (c) => {
    const parsed = auditQuerySchema.safeParse(c.req.query());
    if (!parsed.success) throw badRequest(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
    return c.json({ entries: d.audit.list({ limit: parsed.data.limit ?? 100, before: parsed.data.before }) });
  });
}
