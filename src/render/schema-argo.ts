/**
 * Zod schemas of the Argo CD compatibility fields of an App (Kubernetes target): `spec.syncOptions` and
 * `spec.ignoreDifferences`, each overridable per environment entry. Imported by schema.ts.
 */
import { z } from 'zod';

/** The sync options Keelson honours (docs/kubernetes.md says what each one does here). */
export const SYNC_OPTIONS = [
  'ServerSideApply=true',
  'Replace=true',
  'CreateNamespace=true',
  'Prune=false',
  'Prune=confirm',
  'Validate=false',
  'RespectIgnoreDifferences=true',
  'PruneLast=true',
  'ApplyOutOfSyncOnly=true',
] as const;

export const SyncOptionsSchema = z
  .array(z.enum(SYNC_OPTIONS, { error: `must be one of ${SYNC_OPTIONS.join(', ')}` }))
  .describe('Kubernetes target: Argo CD sync options for every object of the app (an object\'s argocd.argoproj.io/sync-options annotation wins)');

/** RFC 6901: `/`-separated tokens, `~0` for `~` and `~1` for `/`; the whole document ("") is not a field. */
export const JsonPointerSchema = z
  .string()
  .regex(/^(\/([^~]|~[01])*)+$/, { error: 'must be a JSON pointer such as /spec/replicas (each token after "/", "~1" for "/" and "~0" for "~" in a key)' });

export const IgnoreDifferenceSchema = z
  .strictObject({
    group: z.string().optional().describe('API group ("" or absent: the core group; "apps" for Deployments); "*" for any'),
    kind: z.string().min(1).describe('Kind, e.g. Deployment; "*" for any'),
    name: z.string().min(1).optional().describe('Only the object of this name'),
    namespace: z.string().min(1).optional().describe('Only objects in this namespace'),
    jsonPointers: z.array(JsonPointerSchema).optional().describe('Fields to leave alone, e.g. /spec/replicas'),
    managedFieldsManagers: z.array(z.string().min(1)).optional().describe('Fields owned by these field managers (per the live managedFields) are left alone, e.g. kube-controller-manager'),
  })
  .check((ctx) => {
    if (!ctx.value.jsonPointers?.length && !ctx.value.managedFieldsManagers?.length) {
      ctx.issues.push({ code: 'custom', input: ctx.value, message: 'needs "jsonPointers" or "managedFieldsManagers" (the fields to leave alone)' });
    }
  });

export const IgnoreDifferencesSchema = z
  .array(IgnoreDifferenceSchema)
  .describe('Kubernetes target: fields other controllers own, never compared, shown in diff, healed nor applied (like Argo CD\'s ignoreDifferences with RespectIgnoreDifferences)');
