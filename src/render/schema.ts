/**
 * Zod schemas of the ops repository documents (apiVersion keelson.dev/v1alpha1).
 * Objects are strict so typos are errors; defaults are the Kubernetes ones where a counterpart exists.
 * `keelsonJsonSchema()` publishes the same rules for editors (schema/keelson.schema.json).
 */
import { z } from 'zod';
import { exactlyOne } from './schema-rules.js';
import { checkRolloutStrategy, rolloutStrategyFields } from './rollout-schema.js';
import { HooksSchema, NotificationSchema, SyncWindowSchema } from './schema-delivery.js';
import { SecretsSchema } from '../secrets/schema.js';
import { HelmOverridesSchema, HelmSpecSchema } from './helm-schema.js';
import { IgnoreDifferencesSchema, SyncOptionsSchema } from './schema-argo.js';
import { ResourcesSchema, UserSchema } from './schema-isolation.js';
import { HostsSchema, TlsSchema } from './schema-tls.js';

export const API_GROUP = 'keelson.dev';
export const API_VERSION = 'keelson.dev/v1alpha1';
export const KINDS = ['App', 'Environment'] as const;
export type Kind = (typeof KINDS)[number];

export const NAME_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export const Name = z
  .string()
  .max(63, { error: 'must be at most 63 characters' })
  .regex(NAME_PATTERN, {
    error: 'must be lowercase letters, digits and "-", starting and ending with a letter or digit',
  });

const Port = z.int().min(1).max(65535);
const Seconds = (min: number, dflt: number) => z.int().min(min).max(86_400).default(dflt);
const Argv = z.array(z.string().min(1)).min(1);
/** Env values: YAML numbers and booleans are taken as their text (`PORT: 80` → "80"). */
const EnvMap = z.record(
  z.string().min(1),
  z.union([z.string(), z.number(), z.boolean()], { error: 'must be a string (numbers and booleans are taken as text)' }).transform(String),
);


export const ProbeSchema = z
  .strictObject({
    http: z
      .strictObject({
        path: z.string().regex(/^\//, { error: 'must start with "/"' }),
        port: Port.optional(),
      })
      .optional(),
    tcp: z.strictObject({ port: Port.optional() }).optional(),
    exec: z.strictObject({ command: Argv }).optional(),
    initialDelaySeconds: Seconds(0, 0),
    periodSeconds: Seconds(1, 10),
    timeoutSeconds: Seconds(1, 1),
    failureThreshold: Seconds(1, 3),
    successThreshold: Seconds(1, 1),
  })
  .check(exactlyOne(['http', 'tcp', 'exec']))
  .meta({ oneOf: [{ required: ['http'] }, { required: ['tcp'] }, { required: ['exec'] }] });

export const ArtifactSchema = z
  .strictObject({
    path: z.string().min(1).optional().describe('Directory relative to this file, inside the repository, e.g. ../releases/web-{version}'),
    url: z
      .string()
      .refine(isTarGzUrl, { error: 'must be an http(s) URL of a .tar.gz file' })
      .optional()
      .describe('http(s) URL of a .tar.gz, e.g. https://example.com/web-{version}.tar.gz'),
    sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, { error: 'must be 64 hex digits' })
      .transform((s) => s.toLowerCase())
      .optional(),
  })
  .check(exactlyOne(['path', 'url']))
  .check((ctx) => {
    const { path, url, sha256 } = ctx.value;
    if (url !== undefined && sha256 === undefined) {
      ctx.issues.push({ code: 'custom', input: ctx.value, message: 'a url artifact needs "sha256" (64 hex digits) to verify the download' });
    }
    if (path !== undefined && sha256 !== undefined) {
      ctx.issues.push({ code: 'custom', input: ctx.value, path: ['sha256'], message: '"sha256" applies only to a url artifact; remove it' });
    }
  })
  .meta({ oneOf: [{ required: ['path'] }, { required: ['url', 'sha256'] }] });

function isTarGzUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.pathname.endsWith('.tar.gz');
  } catch {
    return false;
  }
}

const Version = z.string().min(1);

/** A Jsonnet parameter: a string, or Jsonnet code (`{code: "..."}`) evaluated as such. */
const JsonnetValue = z.union([z.string(), z.strictObject({ code: z.string().min(1).describe('Jsonnet code, e.g. "3" or "{ a: 1 }"') })], {
  error: 'must be a string, or {code: "<jsonnet code>"}',
});
const JsonnetParams = z.record(
  z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: 'must be a Jsonnet identifier (letters, digits and "_", not starting with a digit)' }),
  JsonnetValue,
);

export const JsonnetSchema = z
  .strictObject({
    tlas: JsonnetParams.optional().describe('Top-level arguments of each .jsonnet file: name → string, or {code: "<jsonnet>"} (--tla-str / --tla-code)'),
    extVars: JsonnetParams.optional().describe('External variables (std.extVar): name → string, or {code: "<jsonnet>"} (--ext-str / --ext-code)'),
    libs: z
      .array(z.string().min(1))
      .optional()
      .describe('Library directories (-J), relative to the file that declares them, inside the repository'),
  })
  .describe('Kubernetes target: parameters of a manifests directory of .jsonnet files');

export const UpdatePolicySchema = z.strictObject({
  semver: z.string().min(1).describe('Range of versions to follow, e.g. "^1.2" or "~2.0.1"'),
  source: z
    .strictObject({
      gitTags: z.string().min(1).optional().describe('Git URL or path of the app repository; its vX.Y.Z (or X.Y.Z) tags are the versions'),
      directory: z.string().min(1).optional().describe('Directory of releases, relative to this file; entry names matching the artifact path (e.g. web-{version}) are the versions'),
    })
    .check(exactlyOne(['gitTags', 'directory']))
    .meta({ oneOf: [{ required: ['gitTags'] }, { required: ['directory'] }] }),
});

export const AppSpecSchema = z.strictObject({
  version: Version.optional().describe(
    'Version to run, a quoted string ("1.10", not 1.10); replaces {version} in the artifact. Required for apps with an artifact or image (and on the local target); optional for manifests apps, which then show the revision',
  ),
  artifact: ArtifactSchema.optional().describe('Local target: where the release comes from, a directory "path" or a .tar.gz "url" with its "sha256"'),
  image: z
    .string()
    .regex(/^[^\s]+$/, { error: 'must be an image reference without spaces' })
    .optional()
    .describe('Kubernetes target: container image; {version} is replaced by the version, else ":<version>" is appended (with manifests: the image whose tag the version sets)'),
  manifests: z.string().min(1).optional().describe('Kubernetes target: directory of Kubernetes YAML (recursive), with a kustomization.yaml, a Helm chart (with a Chart.yaml), or of .jsonnet files, relative to this file'),
  helm: HelmSpecSchema.optional(),
  jsonnet: JsonnetSchema.optional(),
  run: z
    .strictObject({
      command: Argv.optional().describe('argv of the process, run in the artifact directory, e.g. ["node", "server.js"]; on Kubernetes the container command'),
      env: EnvMap.default({}).describe('Environment variables; each environment may add or override some'),
    })
    .default({ env: {} }),
  replicas: z.int().min(0).max(1000).default(1).describe('Number of processes'),
  port: Port.optional().describe('Public port the proxy listens on; each replica gets its own PORT'),
  hosts: HostsSchema.optional(),
  tls: TlsSchema.optional(),
  readiness: ProbeSchema.optional().describe('Traffic goes to a replica only while this succeeds'),
  liveness: ProbeSchema.optional().describe('A replica is restarted when this fails failureThreshold times'),
  dependsOn: z.array(Name).default([]).describe('Apps that must be ready before this one starts'),
  rollout: z
    .strictObject({
      progressDeadlineSeconds: Seconds(1, 60).describe('Seconds for a new version to become ready before it is rolled back'),
      ...rolloutStrategyFields,
    })
    .check(checkRolloutStrategy)
    .default({ progressDeadlineSeconds: 60, strategy: 'rolling' }),
  terminationGracePeriodSeconds: Seconds(0, 30).describe('Seconds between SIGTERM and SIGKILL'),
  secrets: SecretsSchema.optional(),
  hooks: HooksSchema.optional(),
  user: UserSchema.optional(),
  resources: ResourcesSchema.optional(),
  updatePolicy: UpdatePolicySchema.optional().describe('Version automation (`keelson update`): the newest version matching `semver` is committed to environments that set autoUpdate'),
  syncOptions: SyncOptionsSchema.optional(),
  ignoreDifferences: IgnoreDifferencesSchema.optional(),
});

export const AppOverridesSchema = z.strictObject({
  autoUpdate: z.boolean().optional().describe("Let `keelson update` commit new versions of this app here (see the App's updatePolicy)"),
  version: Version.optional(),
  replicas: z.int().min(0).max(1000).optional(),
  env: EnvMap.optional(),
  port: Port.optional(),
  hosts: HostsSchema.optional().describe("Public names of this app in this environment; replace the App's"),
  tls: TlsSchema.optional().describe("HTTPS of this app in this environment; replaces the App's"),
  secrets: SecretsSchema.optional().describe('Secrets of this app in this environment; env entries replace the App\'s by name, files by path'),
  helm: HelmOverridesSchema.optional(),
  syncOptions: SyncOptionsSchema.optional().describe("Replaces the App's syncOptions in this environment"),
  ignoreDifferences: IgnoreDifferencesSchema.optional().describe("Replaces the App's ignoreDifferences in this environment"),
  jsonnet: JsonnetSchema.optional().describe("Jsonnet parameters here: tlas and extVars replace the App's by name; libs (relative to this file) replace the App's"),
  user: UserSchema.optional().describe("Local target: the system user the app runs as in this environment (replaces the App's)"),
  resources: ResourcesSchema.optional().describe("Local target: limits of each replica in this environment, each replacing the App's"),
});

export const TargetSchema = z
  .strictObject({
    local: z.strictObject({}).optional(),
    kubernetes: z
      .strictObject({
        namespace: Name.describe('Namespace the apps run in; created if missing'),
        kubeconfig: z.string().min(1).optional().describe('Kubeconfig file (default: KUBECONFIG, then ~/.kube/config, then in-cluster)'),
        context: z.string().min(1).optional().describe('Context of the kubeconfig (default: its current context)'),
        cluster: z
          .string()
          .min(1)
          .optional()
          .describe("A cluster the engine's configuration names (keelson.yaml `clusters:`); its kubeconfig and context come from there. Excludes kubeconfig and context"),
      })
      .check((ctx) => {
        if (ctx.value.cluster === undefined) return;
        for (const k of ['kubeconfig', 'context'] as const) {
          if (ctx.value[k] !== undefined) ctx.issues.push({ code: 'custom', input: ctx.value, path: [k], message: `"${k}" cannot be combined with "cluster": the engine's configuration gives the cluster's kubeconfig and context` });
        }
      })
      .optional(),
  })
  .check(exactlyOne(['local', 'kubernetes']))
  .meta({ oneOf: [{ required: ['local'] }, { required: ['kubernetes'] }] });

export const EnvironmentSpecSchema = z.strictObject({
  target: TargetSchema.default({ local: {} }),
  /** The apps this environment runs; a null or empty value means no overrides. */
  apps: z
    .record(Name, AppOverridesSchema.nullable())
    .nullable()
    .default({})
    .describe('The apps this environment runs, each with optional overrides (version, replicas, env, port)'),
  expiresAt: z.iso
    .datetime({ offset: true, error: 'must be an ISO 8601 date-time, e.g. "2030-01-31T18:00:00Z"' })
    .optional()
    .describe('When an on-demand environment expires: its apps are stopped and its status becomes Expired (`keelson env gc` removes it)'),
  routing: z
    .enum(['port', 'host'])
    .optional()
    .describe('"port" (default): apps own their public ports; "host": apps share their ports with the owner and are reached as APP.ENV.localhost'),
  hooks: HooksSchema.optional().describe("Hooks run for every app of this environment, before the app's own"),
  syncWindows: z.array(SyncWindowSchema).optional(),
  notifications: z.array(NotificationSchema).optional(),
  protected: z.boolean().optional().describe('`keelson chaos` refuses to run here without --force'),
});

const metadata = z.strictObject({
  name: Name,
  annotations: z.record(z.string().min(1), z.string()).optional().describe('Free-form notes, e.g. keelson.dev/owner of an on-demand environment'),
});

export const AppDocumentSchema = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('App'),
  metadata,
  spec: AppSpecSchema,
});

export const EnvironmentDocumentSchema = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('Environment'),
  metadata,
  spec: EnvironmentSpecSchema,
});

export const KeelsonDocumentSchema = z.discriminatedUnion('kind', [AppDocumentSchema, EnvironmentDocumentSchema]);

export const documentSchemas: Record<Kind, z.ZodType> = {
  App: AppDocumentSchema,
  Environment: EnvironmentDocumentSchema,
};

export type AppDocument = z.output<typeof AppDocumentSchema>;
export type EnvironmentDocument = z.output<typeof EnvironmentDocumentSchema>;
export type KeelsonDocument = z.output<typeof KeelsonDocumentSchema>;
export type AppOverrides = z.output<typeof AppOverridesSchema>;
export type ProbeSpec = z.output<typeof ProbeSchema>;

export const SCHEMA_ID = 'https://keelson.dev/schema/keelson.schema.json';

/** JSON Schema (draft-07, which editors support widely) of one document, oneOf on `kind`; describes input, so defaulted fields are optional. */
export function keelsonJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(KeelsonDocumentSchema, { io: 'input', target: 'draft-07' });
  return {
    $schema: schema.$schema,
    $id: SCHEMA_ID,
    title: 'Keelson ops repository document (App or Environment)',
    ...Object.fromEntries(Object.entries(schema).filter(([k]) => k !== '$schema')),
  };
}

/** The exact text of schema/keelson.schema.json. */
export function keelsonJsonSchemaText(): string {
  return `${JSON.stringify(keelsonJsonSchema(), null, 2)}\n`;
}
