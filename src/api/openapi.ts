import { z } from 'zod';
import type { Access, RoutePolicy } from './auth.js';
import * as s from './schemas.js';
import * as rs from './rollback-schemas.js';

/**
 * Every route of the API in one table: the role it needs (the auth middleware enforces it), whether it is an
 * audited action, and the shapes of its answers (the OpenAPI document is generated from them and the tests
 * parse real responses with them).
 */
export interface RouteDoc {
  method: 'GET' | 'POST';
  /** Hono style: `/api/v1/environments/:env/plan`. */
  path: string;
  access: Access;
  action?: string;
  summary: string;
  query?: z.ZodObject;
  body?: z.ZodType;
  responses: Record<number, { description: string; schema?: z.ZodType; contentType?: string }>;
}

const problem = (description: string) => ({ description, schema: s.problemSchema });
const denied = { 401: problem('no valid bearer token'), 403: problem('the token lacks the role (or the API is read-only)') };

export const routeDocs: RouteDoc[] = [
  { method: 'GET', path: '/healthz', access: 'public', summary: 'Liveness of the API', responses: { 200: { description: 'up', schema: z.object({ ok: z.literal(true) }) } } },
  { method: 'GET', path: '/metrics', access: 'viewer', summary: 'Prometheus metrics (text exposition format)', responses: { 200: { description: 'metrics', contentType: 'text/plain' }, ...denied } },
  { method: 'GET', path: '/api/v1/openapi.json', access: 'public', summary: 'This document', responses: { 200: { description: 'OpenAPI 3.1 document' } } },
  { method: 'GET', path: '/api/v1/whoami', access: 'viewer', summary: 'Who the token belongs to and its role', responses: { 200: { description: 'the caller', schema: s.whoamiSchema }, ...denied } },
  {
    method: 'GET',
    path: '/api/v1/status',
    access: 'viewer',
    summary: 'Status of every environment and app',
    query: z.object({ env: z.string().optional() }),
    responses: { 200: { description: 'status', schema: s.statusSchema }, ...denied },
  },
  {
    method: 'GET',
    path: '/api/v1/matrix',
    access: 'viewer',
    summary: 'Environments × apps, filtered and paginated on the server (the dashboard home)',
    query: s.matrixQuerySchema,
    responses: { 200: { description: 'one page of the matrix', schema: s.matrixSchema }, 400: problem('invalid query'), ...denied },
  },
  {
    method: 'GET',
    path: '/api/v1/environments/:env/plan',
    access: 'viewer',
    summary: 'What a sync of the environment would do now (desired vs live)',
    responses: { 200: { description: 'the plan', schema: s.planResponseSchema }, 404: problem('unknown environment'), ...denied },
  },
  {
    method: 'GET',
    path: '/api/v1/preview',
    access: 'viewer',
    summary: 'What syncing a revision (a branch, tag or sha, fetched into the clone) would do, per environment, against live; changes nothing',
    query: s.previewQuerySchema,
    responses: { 200: { description: 'the plans of the revision', schema: s.previewSchema }, 400: problem('no such revision, or invalid query'), 404: problem('unknown environment'), ...denied },
  },
  {
    method: 'POST',
    path: '/api/v1/environments/:env/sync',
    access: 'operator',
    action: 'sync',
    summary: 'Sync the environment (or one app) now; answers when the sync has finished',
    body: s.syncRequestSchema,
    responses: { 200: { description: 'the outcome', schema: s.syncResponseSchema }, 400: problem('invalid body'), 404: problem('unknown environment'), ...denied },
  },
  {
    method: 'POST',
    path: '/api/v1/environments/:env/pause',
    access: 'operator',
    action: 'pause',
    summary: 'Pause the environment: no syncs, no pruning; apps report Suspended',
    responses: { 200: { description: 'paused', schema: s.pauseResponseSchema }, 404: problem('unknown environment'), ...denied },
  },
  {
    method: 'POST',
    path: '/api/v1/environments/:env/resume',
    access: 'operator',
    action: 'resume',
    summary: 'Resume a paused environment (and reconcile it now)',
    responses: { 200: { description: 'resumed', schema: s.pauseResponseSchema }, 404: problem('unknown environment'), ...denied },
  },
  {
    method: 'GET',
    path: '/api/v1/environments/:env/apps/:app',
    access: 'viewer',
    summary: 'One app in one environment: replicas, status, when it was applied',
    responses: { 200: { description: 'the app', schema: s.appDetailSchema }, 404: problem('unknown environment or app'), ...denied },
  },
  {
    method: 'GET',
    path: '/api/v1/environments/:env/apps/:app/plan',
    access: 'viewer',
    summary: "The app's step of the current plan and its diff (desired vs live)",
    responses: { 200: { description: 'the step', schema: s.appPlanResponseSchema }, 404: problem('unknown environment'), ...denied },
  },
  {
    method: 'POST',
    path: '/api/v1/environments/:env/apps/:app/pause',
    access: 'operator',
    action: 'pause',
    summary: 'Pause one app: the loop leaves it as it is; it reports Suspended',
    responses: { 200: { description: 'paused', schema: s.pauseResponseSchema }, 404: problem('unknown environment or app'), ...denied },
  },
  {
    method: 'POST',
    path: '/api/v1/environments/:env/apps/:app/resume',
    access: 'operator',
    action: 'resume',
    summary: 'Resume a paused app',
    responses: { 200: { description: 'resumed', schema: s.pauseResponseSchema }, 404: problem('unknown environment or app'), ...denied },
  },
  {
    method: 'GET',
    path: '/api/v1/environments/:env/apps/:app/events',
    access: 'viewer',
    summary: 'Recent events of an app (drift healed, restarts, rollbacks, failures)',
    responses: { 200: { description: 'newest first', schema: s.eventsSchema }, ...denied },
  },
  {
    method: 'GET',
    path: '/api/v1/environments/:env/apps/:app/logs',
    access: 'viewer',
    summary: 'Log tail of the app\'s replicas; `follow=1` streams new lines',
    query: z.object({ tail: z.coerce.number().int().optional(), follow: z.enum(['1', 'true']).optional() }),
    responses: { 200: { description: 'log lines', contentType: 'text/plain' }, 404: problem('no logs'), ...denied },
  },
  {
    method: 'GET',
    path: '/api/v1/history',
    access: 'viewer',
    summary: 'Sync history, newest first',
    query: z.object({ env: z.string().optional(), app: z.string().optional(), limit: z.coerce.number().int().optional() }),
    responses: { 200: { description: 'syncs', schema: s.historySchema }, 400: problem('invalid limit'), ...denied },
  },
  {
    method: 'GET',
    path: '/api/v1/events',
    access: 'viewer',
    summary: 'Server-sent event stream of everything that happens (event name = event type, data = JSON)',
    responses: { 200: { description: 'text/event-stream', contentType: 'text/event-stream' }, ...denied },
  },
  {
    method: 'GET',
    path: '/api/v1/audit',
    access: 'operator',
    summary: 'The audit log: who did what, when, with what result; newest first',
    query: s.auditQuerySchema,
    responses: { 200: { description: 'entries', schema: s.auditSchema }, ...denied },
  },
  {
    method: 'POST',
    path: '/api/v1/webhooks/git',
    access: 'public',
    action: 'webhook',
    summary: 'Git push webhook (GitHub x-hub-signature-256 or GitLab x-gitlab-token); rate limited, body ≤ 1 MiB',
    responses: {
      202: { description: 'accepted; a fetch starts', schema: s.webhookAcceptedSchema },
      401: problem('unsigned'),
      403: problem('bad signature'),
      413: problem('body too large'),
      429: problem('rate limited; see Retry-After'),
    },
  },
  {
    method: 'GET',
    path: '/api/v1/apps/:app/where',
    access: 'viewer',
    summary: 'Which version of an app runs in each environment, since when and from which commit',
    responses: { 200: { description: '{app, environments: [{env, version, desiredVersion, health, sync, since, revision, phase}]}' }, ...denied },
  },
  {
    method: 'POST',
    path: '/api/v1/environments/:env/apps/:app/run',
    access: 'admin',
    action: 'run',
    summary: 'Run a one-off command ({argv, timeoutSeconds?}) in the app\'s current release with its environment; streams NDJSON frames {stream,data}… then {exit} or {error}',
    responses: { 200: { description: 'NDJSON stream', contentType: 'application/x-ndjson' }, 400: problem('invalid argv'), 404: problem('unknown environment'), ...denied },
  },
  {
    method: 'GET',
    path: '/api/v1/environments/:env/apps/:app/rollout',
    access: 'viewer',
    summary: "The app's latest progressive rollout (blue/green, canary): phase, step, weight, message",
    responses: { 200: { description: 'rollout state' }, 404: problem('unknown environment, or no rollout since the engine started'), ...denied },
  },
  {
    method: 'POST',
    path: '/api/v1/environments/:env/apps/:app/rollout/promote',
    access: 'operator',
    action: 'promote-rollout',
    summary: 'Promote a progressive rollout past its pause ({full: true} skips every remaining pause and analysis)',
    responses: { 200: { description: 'promotion requested' }, 400: problem('invalid body'), 404: problem('unknown environment'), 409: problem('no rollout under way'), ...denied },
  },
  {
    method: 'GET',
    path: '/api/v1/environments/:env/apps/:app/rollback',
    access: 'viewer',
    summary: 'Whether the engine can commit a GitOps rollback of the app (and why not), and the revision it would restore',
    responses: { 200: { description: 'rollback availability and target', schema: rs.rollbackInfoSchema }, 404: problem('unknown environment'), ...denied },
  },
  {
    method: 'POST',
    path: '/api/v1/environments/:env/apps/:app/rollback',
    access: 'operator',
    action: 'rollback',
    summary: "GitOps rollback by the engine: commits the app's declaration as of `to` (default: the last healthy revision) to the tracked branch, pushes it and deploys it",
    body: rs.rollbackRequestSchema,
    responses: {
      200: { description: 'committed and pushed; the engine deploys it', schema: rs.rollbackResponseSchema },
      400: problem('invalid body'),
      404: problem('unknown environment'),
      409: problem('nothing to roll back, unknown revision, or the ops repository is not writable (a working copy, a tag, a rejected push)'),
      ...denied,
    },
  },
  { method: 'GET', path: '/api/v1/environments/:env/apps/:app/revisions', access: 'viewer', summary: 'Revisions the app ran, for rollback', responses: { 200: { description: 'revisions' }, ...denied } },
  {
    method: 'POST',
    path: '/api/v1/environments/:env/apps/:app/test',
    access: 'operator',
    action: 'helm-test',
    summary: "Run the app's Helm test hooks (helm.sh/hook: test) against the deployed release; answers {ok, message, tests: [{key, name, result, message, log?}]}",
    responses: { 200: { description: 'test report (ok false when a test failed)' }, 404: problem('unknown environment'), 409: problem('the app is not deployed, or its target has no Helm charts'), ...denied },
  },  { method: 'GET', path: '/', access: 'public', summary: 'The dashboard', responses: { 200: { description: 'HTML', contentType: 'text/html' } } },
  { method: 'GET', path: '/ui/:file', access: 'public', summary: "The dashboard's static files", responses: { 200: { description: 'JS or CSS' }, 404: problem('no such file') } },
];

/** The auth middleware's policy table, derived from the route table so the two cannot disagree. */
export function routePolicies(docs: RouteDoc[] = routeDocs): Record<string, RoutePolicy> {
  return Object.fromEntries(docs.map((r) => [`${r.method} ${r.path}`, { access: r.access, action: r.action }]));
}

export function findRouteDoc(method: string, path: string): RouteDoc | undefined {
  return routeDocs.find((r) => r.method === method && r.path === path);
}

const problemSchema502 = z.object({ error: z.literal('BadGateway'), message: z.string(), engine: z.string(), url: z.string() }).meta({ id: 'PeerUnreachable' });

const toOpenApiPath = (p: string) => p.replace(/:([A-Za-z_]+)/g, '{$1}');

/**
 * JSON Schema of a response; named shapes (`.meta({ id })`) go to `components.schemas` and are referenced.
 * `io: 'input'` keeps objects open (no `additionalProperties: false`): the API may add fields.
 */
function jsonSchema(schema: z.ZodType, components: Record<string, unknown>): unknown {
  const generated = JSON.stringify(z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }));
  const out = JSON.parse(generated.replaceAll('"#/$defs/', '"#/components/schemas/')) as Record<string, unknown>;
  const { $schema: _drop, $defs, ...rest } = out as { $schema?: unknown; $defs?: Record<string, unknown> } & Record<string, unknown>;
  for (const [id, def] of Object.entries($defs ?? {})) components[id] = def;
  return rest;
}

function queryParameters(q: z.ZodObject | undefined): unknown[] {
  if (!q) return [];
  const js = z.toJSONSchema(q, { io: 'input', unrepresentable: 'any' }) as { properties?: Record<string, { description?: string }> };
  return Object.entries(js.properties ?? {}).map(([name, schema]) => {
    const { description, ...rest } = schema;
    return { name, in: 'query', required: false, schema: rest, ...(description ? { description } : {}) };
  });
}

/** The OpenAPI 3.1 document served at /api/v1/openapi.json. */
export function openApiDocument(version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const schemas: Record<string, unknown> = {};
  for (const r of routeDocs) {
    const params = [...r.path.matchAll(/:([A-Za-z_]+)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    const responses: Record<string, unknown> = {};
    for (const [code, resp] of Object.entries(r.responses)) {
      const contentType = resp.contentType ?? 'application/json';
      responses[code] = { description: resp.description, content: { [contentType]: resp.schema ? { schema: jsonSchema(resp.schema, schemas) } : {} } };
    }
    // Forwarded to the engine running the environment when another one does (peers.ts, README "The API on every engine").
    if (r.path.startsWith('/api/v1/environments/:env') || r.path === '/api/v1/history') {
      responses['502'] = { description: 'the environment is run by another engine, which did not answer (the message names it and says what to do)', content: { 'application/json': { schema: jsonSchema(problemSchema502, schemas) } } };
    }
    (paths[toOpenApiPath(r.path)] ??= {})[r.method.toLowerCase()] = {
      summary: r.summary,
      operationId: `${r.method.toLowerCase()}${r.path.replace(/[^A-Za-z0-9]+(.)?/g, (_m, ch: string | undefined) => (ch ? ch.toUpperCase() : ''))}`,
      'x-keelson-role': r.access,
      ...(r.action ? { 'x-keelson-audited-action': r.action } : {}),
      security: r.access === 'public' ? [] : [{ bearer: [] }],
      parameters: [...params, ...queryParameters(r.query)],
      ...(r.body ? { requestBody: { required: false, content: { 'application/json': { schema: jsonSchema(r.body, schemas) } } } } : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Keelson API',
      version,
      description:
        'Bearer tokens with roles viewer < operator < admin; x-keelson-role names the role each operation needs. With no tokens configured the API is read-only (viewer) and listens on loopback only.',
    },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } }, schemas },
    paths,
  };
}
