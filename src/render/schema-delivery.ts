/**
 * Zod schemas of the safe-delivery fields: `spec.hooks` (App and Environment), `spec.syncWindows` and
 * `spec.notifications` (Environment). Imported by schema.ts; the JSON Schema is generated from them too.
 */
import { z } from 'zod';
import { exactlyOne } from './schema-rules.js';
import { parseCron } from '../windows/cron.js';

const Seconds = (min: number, max: number, dflt: number) => z.int().min(min).max(max).default(dflt);
const Argv = z.array(z.string().min(1)).min(1);
const StringMap = z.record(z.string().min(1), z.string());
const EnvVarName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: 'must be an environment variable name' });


/** `48h`, `30m`, `90s`, `1h30m` or a number of seconds. */
export function parseDurationSeconds(v: string | number): number | undefined {
  if (typeof v === 'number') return Number.isInteger(v) && v > 0 ? v : undefined;
  const m = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(v.trim());
  if (!m || v.trim() === '') return undefined;
  const s = Number(m[1] ?? 0) * 86_400 + Number(m[2] ?? 0) * 3600 + Number(m[3] ?? 0) * 60 + Number(m[4] ?? 0);
  return s > 0 ? s : undefined;
}

const Duration = z
  .union([z.string(), z.int()])
  .transform((v, ctx) => {
    const s = parseDurationSeconds(v);
    if (s === undefined) {
      ctx.issues.push({ code: 'custom', input: v, message: 'must be a duration such as 30m, 48h, 1h30m or a number of seconds' });
      return z.NEVER;
    }
    return s;
  })
  .describe('Duration: 30m, 48h, 1h30m, 2d or seconds');

const stepCommon = {
  name: z.string().min(1).max(100).optional().describe('Shown in events; defaults to <phase>[index]'),
  timeoutSeconds: Seconds(1, 86_400, 60).describe('Seconds one attempt may take'),
  retries: Seconds(0, 100, 0).describe('Extra attempts after a failure'),
  retryDelaySeconds: Seconds(0, 3600, 1),
};

export const HookStepSchema = z
  .strictObject({
    ...stepCommon,
    exec: z
      .strictObject({ command: Argv.describe('argv, run in the release directory with the app environment and KEELSON_* variables') })
      .optional(),
    http: z
      .strictObject({
        url: z
          .string()
          .refine((s) => /^https?:\/\/./.test(s), { error: 'must be an http(s) URL' })
          .describe('http(s) URL; {port}, {version}, {env} and {app} are replaced'),
        method: z.enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']).default('GET'),
        expectStatus: z
          .union([z.int().min(100).max(599), z.array(z.int().min(100).max(599)).min(1)])
          .transform((v) => (Array.isArray(v) ? v : [v]))
          .default([200])
          .describe('Status code (or list) that counts as success'),
        body: z.string().optional(),
        headers: StringMap.default({}),
      })
      .optional(),
    backup: z
      .strictObject({
        postgres: z
          .strictObject({
            databaseUrl: z
              .string()
              .regex(/^postgres(ql)?:\/\//, { error: 'must be a postgres:// or postgresql:// URL' })
              .optional()
              .describe('Connection URL (prefer "env" so passwords stay out of git)'),
            env: EnvVarName.optional().describe("Name of the app's environment variable holding the connection URL, e.g. DATABASE_URL"),
          })
          .check(exactlyOne(['databaseUrl', 'env'])),
        retain: Seconds(1, 1000, 5).describe('Backups kept per app'),
      })
      .optional(),
  })
  .check(exactlyOne(['exec', 'http', 'backup']))
  .meta({ oneOf: [{ required: ['exec'] }, { required: ['http'] }, { required: ['backup'] }] });

const Steps = z.array(HookStepSchema).optional();

export const HooksSchema = z
  .strictObject({
    preSync: Steps.describe('Before an app is applied; a failure stops the sync and nothing changes live'),
    postSync: Steps.describe('After an app is rolled out; a failure rolls it back to the previous release and reports Failed'),
    syncFailed: Steps.describe('After an app failed to sync'),
    preDelete: Steps.describe('Before an app is pruned; a failure keeps it running'),
  })
  .describe('Deploy pipeline hooks');

export const SyncWindowSchema = z
  .strictObject({
    kind: z.enum(['allow', 'deny']),
    schedule: z
      .string()
      .check((ctx) => {
        const err = parseCron(ctx.value).error;
        if (err) ctx.issues.push({ code: 'custom', input: ctx.value, message: err });
      })
      .describe('Cron expression (minute hour day-of-month month day-of-week) at which the window opens, e.g. "0 0 * * 6"'),
    duration: Duration,
    timeZone: z.enum(['UTC', 'local']).default('UTC'),
    manualSync: z.boolean().default(false).describe('Let `keelson sync` run while this window denies syncs'),
  })
  .describe('Like Argo CD: with any allow window, syncs run only inside one; a deny window blocks syncs while open');

export const NotificationSchema = z
  .strictObject({
    name: z.string().min(1).max(63),
    type: z.enum(['webhook', 'slack']).default('webhook').describe('webhook: JSON body; slack: incoming-webhook {"text"}'),
    url: z
      .string()
      .refine((s) => /^https?:\/\/./.test(s), { error: 'must be an http(s) URL' })
      .optional(),
    urlEnv: EnvVarName.optional().describe("Name of the engine's environment variable holding the URL (keeps webhook secrets out of git)"),
    headers: StringMap.default({}),
    triggers: z
      .array(z.enum(['syncStarted', 'syncSucceeded', 'syncFailed', 'healthDegraded', 'driftHealed', 'rolledBack', 'certificateFailed']))
      .min(1)
      .default(['syncSucceeded', 'syncFailed', 'healthDegraded', 'rolledBack']),
    suppressRepeatsSeconds: Seconds(0, 604_800, 600).describe('The same notification is not sent again within this many seconds'),
    apps: z.array(z.string()).default([]).describe('Only these apps; all when empty'),
  })
  .check(exactlyOne(['url', 'urlEnv']))
  .meta({ oneOf: [{ required: ['url'] }, { required: ['urlEnv'] }] });
