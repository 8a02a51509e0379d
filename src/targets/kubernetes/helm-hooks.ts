/**
 * Helm hooks at Keelson's phases, the way Argo CD maps them: `helm.sh/hook` becomes the Argo CD hook annotation the
 * target already runs (hooks.ts), `helm.sh/hook-weight` the sync wave that orders hooks inside their phase, and
 * `helm.sh/hook-delete-policy` the Argo CD delete policy. Install vs upgrade is the caller's (Keelson's inventory: no
 * record of the app in the environment → install): `pre-install`/`post-install` run only on install,
 * `pre-upgrade`/`post-upgrade` only on upgrade. Test hooks (`test`, `test-success`) are never applied with the
 * release; `pre-delete` hooks are kept for when the app is removed. An object with its own Argo CD hook annotation
 * keeps it (Argo CD's precedence). Pure.
 */
import { ARGO_HOOK, ARGO_HOOK_DELETE_POLICY, ARGO_SYNC_WAVE, type KObject } from './objects.js';

export const HELM_HOOK = 'helm.sh/hook';
export const HELM_HOOK_WEIGHT = 'helm.sh/hook-weight';
export const HELM_HOOK_DELETE_POLICY = 'helm.sh/hook-delete-policy';

const TO_ARGO_PHASE: Record<string, { phase: 'PreSync' | 'PostSync'; on: 'install' | 'upgrade' | 'both' }> = {
  // Helm 2's CRD hook, still in old charts: Argo CD runs it before every sync.
  'crd-install': { phase: 'PreSync', on: 'both' },
  'pre-install': { phase: 'PreSync', on: 'install' },
  'pre-upgrade': { phase: 'PreSync', on: 'upgrade' },
  'post-install': { phase: 'PostSync', on: 'install' },
  'post-upgrade': { phase: 'PostSync', on: 'upgrade' },
};

const TO_ARGO_POLICY: Record<string, string> = {
  'before-hook-creation': 'BeforeHookCreation',
  'hook-succeeded': 'HookSucceeded',
  'hook-failed': 'HookFailed',
};

export interface HelmHookSplit {
  /** Resources and the hooks of this sync, with Argo CD annotations. */
  objects: KObject[];
  /** `test` / `test-success` hooks, as Argo CD hooks of no phase (run by `keelson test` or after a sync). */
  tests: KObject[];
  /** `pre-delete` hooks, run when the app is removed from the environment, before its objects are pruned. */
  preDelete: KObject[];
}

export function helmHooksOf(o: KObject): string[] {
  const v = o.metadata.annotations?.[HELM_HOOK];
  return v ? v.split(',').map((s) => s.trim()).filter(Boolean) : [];
}

/**
 * Splits rendered objects by their Helm hooks. Hooks of other events (rollback, post-delete) are dropped, as Argo CD
 * drops them; an object that is a hook only of the other event (pre-upgrade on install) is not applied.
 */
export function translateHelmHooks(objects: KObject[], o: { install: boolean }): HelmHookSplit {
  const out: HelmHookSplit = { objects: [], tests: [], preDelete: [] };
  const event = o.install ? 'install' : 'upgrade';
  for (const obj of objects) {
    const hooks = helmHooksOf(obj);
    if (hooks.length === 0 || obj.metadata.annotations?.[ARGO_HOOK]) {
      out.objects.push(obj);
      continue;
    }
    const phases = new Set<string>();
    for (const h of hooks) {
      const m = TO_ARGO_PHASE[h];
      if (m && (m.on === event || m.on === 'both')) phases.add(m.phase);
    }
    if (hooks.includes('test') || hooks.includes('test-success')) out.tests.push(asArgoHook(obj, []));
    if (hooks.includes('pre-delete')) out.preDelete.push(asArgoHook(obj, []));
    if (phases.size) out.objects.push(asArgoHook(obj, [...phases]));
  }
  return out;
}

/** A copy with the Argo CD hook annotations: phases (none for tests and pre-delete), wave from weight, delete policy. */
function asArgoHook(obj: KObject, phases: string[]): KObject {
  const copy = structuredClone(obj);
  const a = (copy.metadata.annotations ??= {});
  if (phases.length) a[ARGO_HOOK] = phases.join(',');
  const weight = Number.parseInt(a[HELM_HOOK_WEIGHT] ?? '0', 10);
  if (a[ARGO_SYNC_WAVE] === undefined && Number.isFinite(weight) && weight !== 0) a[ARGO_SYNC_WAVE] = String(weight);
  if (a[ARGO_HOOK_DELETE_POLICY] === undefined) {
    const policies = (a[HELM_HOOK_DELETE_POLICY] ?? '')
      .split(',')
      .map((s) => TO_ARGO_POLICY[s.trim()])
      .filter((p): p is string => p !== undefined);
    // Helm's default, like Argo CD's: delete the previous one before creating the hook again.
    a[ARGO_HOOK_DELETE_POLICY] = policies.length ? [...new Set(policies)].join(',') : 'BeforeHookCreation';
  }
  return copy;
}
