import { z } from 'zod';

/**
 * The shapes the API answers with. The OpenAPI document is generated from these, and the tests parse real
 * responses with them, so the document cannot drift from what the server does. Objects are open (extra fields
 * are allowed): the API may grow fields without breaking clients.
 */
export const syncCode = z.enum(['Synced', 'OutOfSync', 'Failed', 'Unknown']);
export const healthCode = z.enum(['Healthy', 'Progressing', 'Degraded', 'Missing', 'Suspended', 'Unknown']);
export const roleSchema = z.enum(['viewer', 'operator', 'admin']);

export const problemSchema = z.object({ error: z.string(), message: z.string() }).meta({ id: 'Problem' });

const commit = z.object({ message: z.string(), author: z.string(), time: z.string() });

export const replicaSchema = z
  .object({
    id: z.string(),
    pid: z.number().int(),
    port: z.number().int(),
    version: z.string(),
    state: z.string(),
    ready: z.boolean(),
    restarts: z.number().int(),
    startedAt: z.string(),
  })
  .meta({ id: 'Replica' });

export const appStatusSchema = z
  .object({
    name: z.string(),
    version: z.string().nullable(),
    desiredVersion: z.string().nullable(),
    revision: z.string().nullable(),
    sync: syncCode,
    health: healthCode,
    message: z.string(),
    replicas: z.object({ desired: z.number().int(), ready: z.number().int(), total: z.number().int(), updated: z.number().int() }),
    instances: z.array(z.record(z.string(), z.unknown())),
    certificates: z
      .array(
        z.object({
          hosts: z.array(z.string()),
          source: z.enum(['acme', 'file']),
          state: z.enum(['Ready', 'Pending', 'Failed']),
          serving: z.boolean(),
          issuer: z.string().nullable(),
          notAfter: z.string().nullable(),
          serial: z.string().nullable(),
          lastRenewal: z.string().nullable(),
          lastError: z.string().nullable(),
          nextAttemptAt: z.string().nullable(),
        }),
      )
      .optional()
      .describe('HTTPS certificates of the app\'s hosts (local target)'),
  })
  .meta({ id: 'AppStatus' });

/** Which engine runs an environment (README: "Several engines on one ops repository"). */
export const claimSchema = z
  .object({
    state: z.enum(['Active', 'Standby', 'Unknown']),
    holder: z.string().nullable(),
    identity: z.string(),
    url: z.string().nullable().optional().describe("the holder's API (--advertise-url), where the other engines forward requests about the environment"),
    since: z.string().nullable(),
    expiresAt: z.string().nullable(),
    where: z.string(),
    error: z.string().nullable(),
    message: z.string(),
  })
  .meta({ id: 'Claim' });

export const environmentStatusSchema = z
  .object({
    name: z.string(),
    target: z.string(),
    revision: z.string().nullable(),
    syncing: z.boolean(),
    error: z.object({ revision: z.string(), message: z.string(), issues: z.array(z.string()) }).nullable(),
    claim: claimSchema.nullable().optional(),
    paused: z.boolean().optional().describe('the environment is paused (keelson pause)'),
    peer: z
      .object({ engine: z.string(), url: z.string(), error: z.string().nullable() })
      .optional()
      .describe('present when the environment is run by another engine: its answer is shown (error null), or this engine\'s own view when it did not answer (error says why)'),
    apps: z.array(appStatusSchema),
  })
  .meta({ id: 'EnvironmentStatus' });

export const statusSchema = z
  .object({
    revision: z.string().nullable(),
    commit: commit.nullable(),
    source: z.object({ repo: z.string(), ref: z.string().nullable(), path: z.string(), lastFetch: z.string().nullable(), error: z.string().nullable() }),
    environments: z.array(environmentStatusSchema),
    /** This engine (README "Sharding"): its identity, how many engines share the environments, and which are assigned to it. */
    engine: z.object({ id: z.string(), members: z.number().int(), assigned: z.array(z.string()) }).optional(),
  })
  .meta({ id: 'Status' });

export const planStepSchema = z
  .object({
    app: z.string(),
    action: z.enum(['create', 'update', 'scale', 'delete', 'none', 'blocked']),
    from: z.string().optional(),
    to: z.string().optional(),
    changes: z.array(z.object({ path: z.string() }).loose()),
    reason: z.string(),
    dependsOn: z.array(z.string()),
  })
  .meta({ id: 'PlanStep' });

export const planSchema = z.object({ env: z.string(), revision: z.string(), steps: z.array(planStepSchema) }).meta({ id: 'Plan' });
export const planResponseSchema = z.object({ plan: planSchema, text: z.string() });
export const previewQuerySchema = z.object({
  revision: z.string().min(1).describe('Branch, tag or commit sha of the ops repository to preview'),
  env: z.string().optional().describe('One environment (default: every environment the revision declares or deletes)'),
});
export const previewSchema = z
  .object({
    revision: z.string(),
    commit: z.object({ message: z.string(), author: z.string(), time: z.string() }),
    base: z.string().nullable(),
    issues: z.array(z.string()),
    environments: z.array(planSchema),
  })
  .meta({ id: 'Preview' });
export const appPlanResponseSchema = z.object({ step: planStepSchema.nullable(), text: z.string(), paused: z.boolean() });

export const syncRequestSchema = z.object({ app: z.string().optional(), force: z.boolean().optional().describe('Kubernetes: take over fields other field managers own (server-side apply force)'), confirmPrune: z.boolean().optional().describe('Kubernetes: delete the objects whose prune waits for confirmation (Argo CD sync option Prune=confirm)') });
export const syncResponseSchema = z.object({ result: z.enum(['Succeeded', 'Failed', 'Unchanged']), message: z.string() });

export const syncRecordSchema = z
  .object({
    id: z.number().int(),
    env: z.string(),
    revision: z.string(),
    startedAt: z.string(),
    durationMs: z.number(),
    result: z.enum(['Succeeded', 'Failed']),
    summary: z.string(),
    message: z.string(),
    changes: z.array(z.object({ app: z.string(), action: z.string(), from: z.string().optional(), to: z.string().optional(), message: z.string().optional() })),
  })
  .meta({ id: 'SyncRecord' });
export const historySchema = z.object({ syncs: z.array(syncRecordSchema) });

export const storedEventSchema = z
  .object({ seq: z.number().int(), time: z.string(), type: z.string(), env: z.string().nullable(), app: z.string().nullable(), data: z.record(z.string(), z.unknown()) })
  .meta({ id: 'StoredEvent' });
export const eventsSchema = z.object({ events: z.array(storedEventSchema) });

export const webhookAcceptedSchema = z.object({ accepted: z.literal(true), provider: z.enum(['github', 'gitlab', 'generic']) });

export const whoamiSchema = z.object({
  name: z.string(),
  role: roleSchema,
  anonymous: z.boolean(),
  /** False when no tokens are configured: the API is read-only. */
  authEnabled: z.boolean(),
});

export const matrixCellSchema = z
  .object({
    version: z.string().nullable(),
    desiredVersion: z.string().nullable(),
    sync: syncCode,
    health: healthCode,
    revision: z.string().nullable(),
    /** First line of the commit message of `revision`. */
    commitMessage: z.string().nullable(),
    message: z.string(),
    /** When this app was last applied in this environment. */
    since: z.string().nullable(),
    paused: z.boolean(),
    ready: z.number().int(),
    desired: z.number().int(),
  })
  .meta({ id: 'MatrixCell' });

export const matrixSchema = z
  .object({
    revision: z.string().nullable(),
    commit: commit.nullable(),
    environments: z.array(z.object({ name: z.string(), target: z.string(), paused: z.boolean(), syncing: z.boolean(), error: z.string().nullable(), standby: z.string().nullable().optional() })),
    /** Apps matching the filters, before pagination. */
    total: z.number().int(),
    offset: z.number().int(),
    limit: z.number().int(),
    rows: z.array(z.object({ app: z.string(), cells: z.record(z.string(), matrixCellSchema) })),
    counts: z.object({ sync: z.record(z.string(), z.number().int()), health: z.record(z.string(), z.number().int()) }),
  })
  .meta({ id: 'Matrix' });

export const matrixQuerySchema = z.object({
  q: z.string().optional().describe('substring of the app name'),
  env: z.string().optional().describe('only this environment (column)'),
  sync: syncCode.optional().describe('only apps with this sync status in some shown environment'),
  health: healthCode.optional().describe('only apps with this health in some shown environment'),
  offset: z.coerce.number().int().min(0).optional(),
  limit: z.coerce.number().int().min(1).max(500).optional(),
});

export const appDetailSchema = z
  .object({
    env: z.string(),
    app: appStatusSchema,
    paused: z.boolean(),
    environmentPaused: z.boolean(),
    appliedAt: z.string().nullable(),
    commitMessage: z.string().nullable(),
  })
  .meta({ id: 'AppDetail' });

export const pauseResponseSchema = z.object({ env: z.string(), app: z.string().nullable(), paused: z.boolean(), changed: z.boolean() });

export const auditEntrySchema = z
  .object({
    id: z.number().int(),
    time: z.string(),
    actor: z.string(),
    role: z.string().nullable(),
    action: z.string(),
    target: z.string(),
    result: z.enum(['succeeded', 'failed', 'denied']),
    status: z.number().int(),
    message: z.string(),
  })
  .meta({ id: 'AuditEntry' });
export const auditSchema = z.object({ entries: z.array(auditEntrySchema) });
export const auditQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  before: z.coerce.number().int().optional().describe('entries with an id below this (pagination)'),
});
