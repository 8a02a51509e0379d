/**
 * An app's SOPS secrets on Kubernetes: one Secret `<app>-secrets` (decrypted at apply time from the checkout),
 * wired into every container of the app's workloads — env vars by `secretKeyRef`, secret files as a volume at
 * `/var/run/keelson/secrets` with `KEELSON_SECRETS_DIR` pointing there, as on the local target.
 *
 * Plaintext never leaves memory and the API request: Keelson's applied hash covers the engine's keyed digests,
 * not the values; the store keeps Secrets without `data`; drift events and `keelson diff` show `(redacted)`.
 */
import type { DesiredApp } from '../../core/model.js';
import { TerminalError } from '../../core/errors.js';
import { SECRETS_DIR_VAR } from '../../secrets/local-runtime.js';
import { secretDataFor } from '../../secrets/resolve.js';
import { hashOf, type KObject } from './objects.js';

export const SECRETS_MOUNT = '/var/run/keelson/secrets';
/** On the Secret and the pod templates: a digest of the app's secret digests; a changed value rolls the pods. */
export const ANNOTATION_SECRETS = 'keelson.dev/secrets';
export const REDACTED = '(redacted)';
const VOLUME = 'keelson-secrets';
const WORKLOADS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job', 'CronJob']);

export function secretName(app: string): string {
  return `${app}-secrets`.slice(0, 253);
}

export function isSecret(o: { apiVersion: string; kind: string }): boolean {
  return o.kind === 'Secret' && o.apiVersion === 'v1';
}

/** Over the engine's keyed digests (HMAC of each value), never over plaintext. */
export function secretsDigest(app: DesiredApp): string | undefined {
  const s = app.secrets;
  if (!s) return undefined;
  const digests = (m: Record<string, { file: string; key?: string; digest?: string }>) => Object.fromEntries(Object.entries(m).map(([k, r]) => [k, r.digest ?? `${r.file}#${r.key ?? ''}`]));
  return hashOf({ env: digests(s.env), files: digests(s.files) });
}

/** The Secret object of an app with secrets (values base64 in `data`), or undefined. */
export async function secretObject(app: DesiredApp, checkoutDir: string): Promise<KObject | undefined> {
  if (!app.secrets) return undefined;
  const { env, files } = await secretDataFor(app, checkoutDir);
  const data: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) data[k] = Buffer.from(v, 'utf8').toString('base64');
  for (const [k, v] of Object.entries(files)) {
    if (k in data) throw new TerminalError(`app ${app.name}: secret file ${k} and secret env var ${k} would share one key of Secret ${secretName(app.name)}; rename one of them`);
    if (!/^[-._a-zA-Z0-9]+$/.test(k)) throw new TerminalError(`app ${app.name}: secret file path ${k} is not a valid Secret key (letters, digits, "-", "_", "." and "/")`);
    data[k] = Buffer.from(v, 'utf8').toString('base64');
  }
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: secretName(app.name), annotations: { [ANNOTATION_SECRETS]: secretsDigest(app)! } },
    type: 'Opaque',
    data,
  };
}

/** Every container of a workload gets the app's secret env vars and files; the pod template the digest. */
export function injectSecrets(o: KObject, app: DesiredApp): KObject {
  if (!app.secrets || !WORKLOADS.has(o.kind)) return o;
  const out = structuredClone(o) as KObject & { spec?: Record<string, any> };
  const template = o.kind === 'CronJob' ? out.spec?.jobTemplate?.spec?.template : out.spec?.template;
  if (!template?.spec) return out;
  const name = secretName(app.name);
  template.metadata ??= {};
  template.metadata.annotations = { ...template.metadata.annotations, [ANNOTATION_SECRETS]: secretsDigest(app) };
  const fileKeys = Object.keys(app.secrets.files).map((p) => ({ key: p.replaceAll('/', '_'), path: p }));
  if (fileKeys.length) {
    const volumes: { name: string }[] = (template.spec.volumes ??= []);
    if (!volumes.some((v) => v.name === VOLUME)) volumes.push({ name: VOLUME, secret: { secretName: name, items: fileKeys } } as never);
  }
  for (const c of [...(template.spec.initContainers ?? []), ...(template.spec.containers ?? [])]) {
    const env: { name: string; value?: string; valueFrom?: unknown }[] = (c.env ??= []);
    const set = (e: { name: string; value?: string; valueFrom?: unknown }) => {
      const i = env.findIndex((x) => x.name === e.name);
      if (i >= 0) env[i] = e;
      else env.push(e);
    };
    for (const v of Object.keys(app.secrets.env).sort()) set({ name: v, valueFrom: { secretKeyRef: { name, key: v } } });
    if (fileKeys.length) {
      set({ name: SECRETS_DIR_VAR, value: SECRETS_MOUNT });
      const mounts: { name: string }[] = (c.volumeMounts ??= []);
      if (!mounts.some((m) => m.name === VOLUME)) mounts.push({ name: VOLUME, mountPath: SECRETS_MOUNT, readOnly: true } as never);
    }
  }
  return out;
}

/** A Secret as the store keeps it: no values. */
export function withoutData(o: KObject): KObject {
  if (!isSecret(o)) return o;
  const { data: _d, stringData: _s, ...rest } = o as KObject & { data?: unknown; stringData?: unknown };
  return rest as KObject;
}

/** Field changes as events and diffs show them: values of a Secret's data are `(redacted)`. */
export function redactChanges<T extends { path?: string; field?: string }>(o: { apiVersion: string; kind: string }, changes: T[]): T[] {
  if (!isSecret(o)) return changes;
  return changes.map((c) => {
    const p = c.path ?? c.field ?? '';
    if (p === '' || p === 'data' || p === 'stringData' || p.startsWith('data.') || p.startsWith('stringData.')) {
      const r: Record<string, unknown> = { ...c };
      for (const k of ['old', 'new', 'live', 'desired']) if (k in r && r[k] !== undefined) r[k] = REDACTED;
      return r as T;
    }
    return c;
  });
}
