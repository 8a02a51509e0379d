/** Resolves the safe-delivery fields of an Environment (and its Apps' hooks) into the desired model. Pure. */
import { HOOK_PHASES, type HookSet, type HookStep, type NotificationSpec, type SyncWindow } from '../core/delivery.js';
import type { DesiredEnvironment } from '../core/model.js';
import type { EnvironmentDocument } from './schema.js';

type Hooks = NonNullable<EnvironmentDocument['spec']['hooks']>;
type Spec = EnvironmentDocument['spec'];

/** Only the fields that are set, so environments without them render exactly as before. */
export function resolveDelivery(spec: Spec, appHooks: [string, Hooks | undefined][]): Partial<DesiredEnvironment> {
  const out: Partial<DesiredEnvironment> = {};
  const hooks: Record<string, HookSet> = {};
  for (const [app, own] of appHooks) {
    const set = mergeHooks(spec.hooks, own);
    if (set) hooks[app] = set;
  }
  if (Object.keys(hooks).length) out.hooks = hooks;
  if (spec.syncWindows?.length) {
    out.syncWindows = spec.syncWindows.map(
      (w): SyncWindow => ({ kind: w.kind, schedule: w.schedule, durationSeconds: w.duration, timeZone: w.timeZone, manualSync: w.manualSync }),
    );
  }
  if (spec.notifications?.length) {
    out.notifications = spec.notifications.map((n): NotificationSpec => {
      const r: NotificationSpec = { name: n.name, type: n.type, headers: { ...n.headers }, triggers: [...n.triggers], suppressRepeatsSeconds: n.suppressRepeatsSeconds, apps: [...n.apps] };
      if (n.url !== undefined) r.url = n.url;
      if (n.urlEnv !== undefined) r.urlEnv = n.urlEnv;
      return r;
    });
  }
  if (spec.protected) out.protected = true;
  return out;
}

function mergeHooks(env: Hooks | undefined, app: Hooks | undefined): HookSet | undefined {
  const set: HookSet = {};
  for (const phase of HOOK_PHASES) {
    const steps = [...(env?.[phase] ?? []), ...(app?.[phase] ?? [])].map(toStep);
    if (steps.length) set[phase] = steps;
  }
  return Object.keys(set).length ? set : undefined;
}

function toStep(s: NonNullable<Hooks['preSync']>[number]): HookStep {
  const base = { timeoutSeconds: s.timeoutSeconds, retries: s.retries, retryDelaySeconds: s.retryDelaySeconds, ...(s.name !== undefined ? { name: s.name } : {}) };
  if (s.exec) return { ...base, exec: { command: [...s.exec.command] } };
  if (s.http) {
    const http = { url: s.http.url, method: s.http.method, expectStatus: [...s.http.expectStatus], headers: { ...s.http.headers }, ...(s.http.body !== undefined ? { body: s.http.body } : {}) };
    return { ...base, http };
  }
  const pg = s.backup!.postgres;
  return { ...base, backup: { postgres: pg.databaseUrl !== undefined ? { databaseUrl: pg.databaseUrl } : { env: pg.env! }, retain: s.backup!.retain } };
}
