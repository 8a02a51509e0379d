/**
 * Server-side apply of one object with field manager `keelson`, writing only what differs: an object whose live
 * state still carries the applied hash and every desired field is `unchanged` without any request; when only
 * defaulting makes them look different, a server-side dry-run decides.
 */
import type { Action } from '../../core/types.js';
import { apiMessage, isTransient, statusCode, type KubeClient } from './client.js';
import { apiWrites } from './limit.js';
import { ANNOTATION_APPLIED, FIELD_MANAGER, formatKey, matchesDesired, normalize, stableJson, type KObject } from './objects.js';

export type ObjectAction = Action | 'failed';

/** What happened to one object; `keelson` shows these per app. */
export interface ObjectResult {
  key: string;
  action: ObjectAction;
  message?: string;
}

export interface ApplyOptions {
  /** Take over fields another field manager owns (`--force`). */
  force: boolean;
}

export function defaultApplyOptions(): ApplyOptions {
  return { force: false };
}

export async function applyObject(
  api: KubeClient,
  desired: KObject,
  live: KObject | undefined,
  opts: ApplyOptions = defaultApplyOptions(),
): Promise<{ result: ObjectResult; live?: KObject }> {
  const key = formatKey(desired);
  if (matchesDesired(desired, live)) return { result: { key, action: 'unchanged' }, live };
  try {
    if (live && live.metadata.annotations?.[ANNOTATION_APPLIED] === desired.metadata.annotations?.[ANNOTATION_APPLIED]) {
      // Same desired as last time, yet a field looks different: ask the server what applying would do.
      const dry = await ssa(api, desired, opts.force, true);
      if (stableJson(normalize(dry)) === stableJson(normalize(live))) return { result: { key, action: 'unchanged' }, live };
    }
    const applied = await ssa(api, desired, opts.force, false);
    return { result: { key, action: live ? 'configured' : 'created' }, live: applied };
  } catch (err) {
    if (isTransient(err)) throw err; // the whole apply is retried with backoff, not reported as this object's fault
    return { result: { key, action: 'failed', message: applyError(key, err) } };
  }
}

export function ssa(api: KubeClient, o: KObject, force: boolean, dryRun: boolean): Promise<KObject> {
  return apiWrites.run(() => api.apply(o, { fieldManager: FIELD_MANAGER, force, dryRun }));
}

function applyError(key: string, err: unknown): string {
  if (statusCode(err) === 409) {
    return `${key} apply conflict: ${apiMessage(err)}; another field manager owns these fields. Remove them from the manifest, or run \`keelson sync --force\` to take them over`;
  }
  return `${key} apply failed: ${apiMessage(err)}`;
}
