/**
 * Server-side apply of one object with field manager `keelson`, writing only what differs: an object whose live
 * state still carries the applied hash and every desired field is `unchanged` without any request; when only
 * defaulting makes them look different, a server-side dry-run decides. Fields of `ignoreDifferences` are neither
 * compared nor taken back (ignore.ts). Sync option `Replace=true` writes the object with PUT instead (and deletes and
 * re-creates it when the server refuses the change as immutable), as `kubectl replace` does.
 */
import type { IgnoreDifference } from '../../core/model.js';
import type { Action } from '../../core/types.js';
import { apiMessage, isNotFound, isTransient, statusCode, type KubeClient } from './client.js';
import { comparable, forApply, rulesFor } from './ignore.js';
import { apiWrites } from './limit.js';
import { ANNOTATION_APPLIED, FIELD_MANAGER, formatKey, matchesDesired, normalize, stableJson, syncOption, type KObject } from './objects.js';

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
  /** The app's `ignoreDifferences`. */
  ignore?: readonly IgnoreDifference[];
  /** The app's `syncOptions` (an object's own annotation wins). */
  syncOptions?: readonly string[];
  /** The apply's ticket for the queue of writes (limit.ts): an app's writes go before those of apps started later. */
  ticket?: number;
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
  const replace = syncOption(desired, 'Replace', opts.syncOptions) === 'true';
  try {
    live = await withManagedFields(api, desired, live, opts.ignore);
    if (matchesDesired(comparable(desired, live, opts.ignore), live)) return { result: { key, action: 'unchanged' }, live };
    if (replace) return { result: { key, action: live ? 'configured' : 'created' }, live: await replaceObject(api, forApply(desired, live, opts.ignore, 'replace'), live, opts.ticket) };
    const body = forApply(desired, live, opts.ignore);
    if (live && live.metadata.annotations?.[ANNOTATION_APPLIED] === desired.metadata.annotations?.[ANNOTATION_APPLIED]) {
      // Same desired as last time, yet a field looks different: ask the server what applying would do.
      const dry = await ssa(api, body, opts.force, true, opts.ticket);
      if (stableJson(normalize(dry)) === stableJson(normalize(live))) return { result: { key, action: 'unchanged' }, live };
    }
    const applied = await ssa(api, body, opts.force, false, opts.ticket);
    return { result: { key, action: live ? 'configured' : 'created' }, live: applied };
  } catch (err) {
    if (isTransient(err)) throw err; // the whole apply is retried with backoff, not reported as this object's fault
    return { result: { key, action: 'failed', message: applyError(key, err) } };
  }
}

/**
 * The live object with its `managedFields` when ignoreDifferences rules apply to it (who owns a field decides what
 * is left alone): read from the API server when the cached copy has none (the watch drops them to save memory).
 */
export async function withManagedFields(api: KubeClient, desired: KObject, live: KObject | undefined, ignore: readonly IgnoreDifference[] | undefined): Promise<KObject | undefined> {
  if (!live || live.metadata.managedFields || !rulesFor(desired, ignore).length) return live;
  try {
    return await api.read(desired);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

export function ssa(api: KubeClient, o: KObject, force: boolean, dryRun: boolean, ticket?: number, strict = false): Promise<KObject> {
  return apiWrites.run(() => api.apply(o, { fieldManager: FIELD_MANAGER, force, dryRun, strict }), ticket);
}

/** `Replace=true`: create, or PUT the whole object; a change the server refuses as immutable deletes and re-creates it. */
async function replaceObject(api: KubeClient, o: KObject, live: KObject | undefined, ticket?: number): Promise<KObject> {
  const create = () => apiWrites.run(() => api.create(o, FIELD_MANAGER), ticket);
  if (!live) return create();
  const path = await api.pathOf(o);
  try {
    return await apiWrites.run(() => api.request<KObject>('PUT', path, { body: o, query: { fieldManager: FIELD_MANAGER } }), ticket);
  } catch (err) {
    if (statusCode(err) !== 422 || !/immutable/i.test(apiMessage(err))) throw err;
  }
  await api.delete(o, 'Foreground').catch((err) => {
    if (!isNotFound(err)) throw err;
  });
  // Foreground: the object stays (with a deletionTimestamp) until its dependents are gone.
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const still = await api.read(o).catch((err) => {
      if (isNotFound(err)) return undefined;
      throw err;
    });
    if (!still) return create();
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${formatKey(o)} was deleted to be re-created (Replace=true, immutable fields changed), but is still there after 60s`);
}

function applyError(key: string, err: unknown): string {
  if (statusCode(err) === 409) {
    return `${key} apply conflict: ${apiMessage(err)}; another field manager owns these fields. Remove them from the manifest, or run \`keelson sync --force\` to take them over`;
  }
  return `${key} apply failed: ${apiMessage(err)}`;
}
