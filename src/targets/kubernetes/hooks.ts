/**
 * Argo CD resource hooks, so an ops repository written for Argo CD deploys unchanged: objects annotated
 * `argocd.argoproj.io/hook: PreSync|Sync|PostSync|SyncFail` (usually Jobs) run at that phase, are created afresh
 * each sync and waited for; `argocd.argoproj.io/hook-delete-policy` (`BeforeHookCreation` by default,
 * `HookSucceeded`, `HookFailed`) says when they are deleted. `Skip` objects are never applied.
 *
 * A hook written with `metadata.generateName` (the usual way) is created with POST, never applied (server-side apply
 * needs a name); the name the server gives it is the one waited for and deleted by `HookSucceeded`/`HookFailed`.
 * Each run carries label `keelson.dev/hook` (a hash of phase, generateName and kind) next to Keelson's env and app
 * labels: `BeforeHookCreation` deletes the earlier runs of that hook by these labels.
 */
import { ARGO_HOOK, ARGO_HOOK_DELETE_POLICY, formatKey, hashOf, LABEL_APP, LABEL_ENV, LABEL_HOOK, type KObject } from './objects.js';
import { sortForApply, wavesOf } from './order.js';
import type { ObjectResult } from './apply.js';

export type HookPhase = 'PreSync' | 'Sync' | 'PostSync' | 'SyncFail';
const PHASES: HookPhase[] = ['PreSync', 'Sync', 'PostSync', 'SyncFail'];

export function hookPhasesOf(o: KObject): string[] {
  const v = o.metadata.annotations?.[ARGO_HOOK];
  return v ? v.split(',').map((s) => s.trim()).filter(Boolean) : [];
}

/** Splits rendered objects into the ones that are synced and tracked, and the hooks of each phase. */
export function splitHooks(objects: KObject[]): { resources: KObject[]; hooks: Record<HookPhase, KObject[]> } {
  const hooks: Record<HookPhase, KObject[]> = { PreSync: [], Sync: [], PostSync: [], SyncFail: [] };
  const resources: KObject[] = [];
  for (const o of objects) {
    const phases = hookPhasesOf(o);
    if (phases.length === 0) {
      resources.push(o);
      continue;
    }
    for (const p of phases) if ((PHASES as string[]).includes(p)) hooks[p as HookPhase].push(o);
  }
  for (const p of PHASES) hooks[p] = sortForApply(hooks[p]);
  return { resources, hooks };
}

/**
 * The sync phase as Argo CD runs it: waves ascending, and in each wave its objects, then its Sync hooks
 * (`argocd.argoproj.io/sync-wave` on a Sync hook places it between the waves of the app's objects).
 */
export function syncWaves(resources: KObject[], syncHooks: KObject[]): { wave: number; objects: KObject[]; hooks: KObject[] }[] {
  const byWave = new Map<number, { wave: number; objects: KObject[]; hooks: KObject[] }>();
  const at = (wave: number) => {
    let w = byWave.get(wave);
    if (!w) byWave.set(wave, (w = { wave, objects: [], hooks: [] }));
    return w;
  };
  for (const w of wavesOf(resources)) at(w.wave).objects.push(...w.objects);
  for (const w of wavesOf(syncHooks)) at(w.wave).hooks.push(...w.objects);
  return [...byWave.values()].sort((a, b) => a.wave - b.wave);
}

export function deletePolicies(o: KObject): Set<string> {
  const v = o.metadata.annotations?.[ARGO_HOOK_DELETE_POLICY];
  return new Set(v ? v.split(',').map((s) => s.trim()) : ['BeforeHookCreation']);
}

/** Hook completion from its live status: Jobs and Pods finish; anything else is done once applied. */
export function hookState(o: KObject | undefined): 'running' | 'succeeded' | 'failed' {
  if (!o) return 'running';
  const status = (o as { status?: any }).status ?? {};
  if (o.kind === 'Job') {
    const conds: { type: string; status: string }[] = status.conditions ?? [];
    if (conds.some((c) => c.type === 'Failed' && c.status === 'True')) return 'failed';
    if (conds.some((c) => c.type === 'Complete' && c.status === 'True')) return 'succeeded';
    return 'running';
  }
  if (o.kind === 'Pod') return status.phase === 'Succeeded' ? 'succeeded' : status.phase === 'Failed' ? 'failed' : 'running';
  return 'succeeded';
}

/** A hook written with `generateName` and no name: every run is a new object the server names. */
export function isGeneratedHook(o: KObject): boolean {
  return !o.metadata.name && typeof o.metadata.generateName === 'string' && o.metadata.generateName !== '';
}

/** The hook run's label value: which hook it is (phase, generateName, kind), whatever name the server gave it. */
export function hookIdentity(o: KObject, phase: HookPhase | 'Test'): string {
  return hashOf({ phase, generateName: o.metadata.generateName, group: o.apiVersion.split('/').slice(0, -1).join('/'), kind: o.kind, namespace: o.metadata.namespace ?? '' });
}

/** The label selector of every run of a generated hook in its app and environment. */
export function hookRunSelector(o: KObject): string {
  const l = o.metadata.labels ?? {};
  return `${LABEL_ENV}=${l[LABEL_ENV]},${LABEL_APP}=${l[LABEL_APP]},${LABEL_HOOK}=${l[LABEL_HOOK]}`;
}

/** What running one phase needs from the target: apply (or create), delete, and wait on the watch cache. */
export interface HookRunner {
  /** Applies a named hook; creates a generated one and returns it as the server named it. */
  apply(o: KObject): Promise<{ result: ObjectResult; created?: KObject }>;
  deleteAndWait(o: KObject): Promise<void>;
  /** Deletes the earlier runs of a generated hook (found by `hookRunSelector`) and waits until they are gone. */
  deleteRuns(o: KObject): Promise<void>;
  waitFor(o: KObject, timeoutMs: number): Promise<'succeeded' | 'failed' | 'timeout'>;
}

export async function runHookPhase(phase: HookPhase, hooks: KObject[], runner: HookRunner, timeoutMs: number): Promise<{ ok: boolean; results: ObjectResult[]; message: string }> {
  const results: ObjectResult[] = [];
  for (const declared of hooks) {
    const generated = isGeneratedHook(declared);
    const hook = generated ? { ...declared, metadata: { ...declared.metadata, labels: { ...declared.metadata.labels, [LABEL_HOOK]: hookIdentity(declared, phase) } } } : declared;
    const policies = deletePolicies(hook);
    if (policies.has('BeforeHookCreation')) await (generated ? runner.deleteRuns(hook) : runner.deleteAndWait(hook));
    const { result: applied, created } = await runner.apply(hook);
    if (applied.action === 'failed') {
      results.push(applied);
      return { ok: false, results, message: `${phase} hook ${applied.message ?? formatKey(hook)}` };
    }
    const run = created ?? hook;
    const key = formatKey(run);
    const state = await runner.waitFor(run, timeoutMs);
    if (state === 'succeeded') {
      if (policies.has('HookSucceeded')) await runner.deleteAndWait(run);
      results.push({ key, action: applied.action, message: `${phase} hook succeeded` });
      continue;
    }
    if (policies.has('HookFailed')) await runner.deleteAndWait(run);
    const why = state === 'timeout' ? `did not finish within ${Math.round(timeoutMs / 1000)}s` : 'failed';
    results.push({ key, action: 'failed', message: `${phase} hook ${key} ${why}` });
    return { ok: false, results, message: `${phase} hook ${key} ${why}` };
  }
  return { ok: true, results, message: '' };
}
