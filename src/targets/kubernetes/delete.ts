/**
 * Prune: delete what Keelson applied before and no longer declares, in reverse apply order, unless an object is
 * annotated to be kept (`keelson.dev/prune: disabled`, Argo CD `sync-options: Prune=false`, Flux
 * `kustomize.toolkit.fluxcd.io/prune: disabled`) or no longer carries Keelson's labels (someone adopted it).
 * Argo CD's `Prune=confirm` (annotation or the App's `syncOptions`) holds the delete until a sync confirms it
 * (`keelson sync --confirm-prune`). Only objects Keelson applied are ever pruned: hook runs and objects controllers
 * create are not in its inventory.
 */
import { apiMessage, isNotFound, type KubeClient } from './client.js';
import type { ObjectResult } from './apply.js';
import { formatKey, identity, isKept, LABEL_APP, LABEL_ENV, needsPruneConfirmation, syncOption, type KObject } from './objects.js';
import { sortForDelete } from './order.js';
import { withoutData } from './secrets.js';

/** Objects of `previous` whose identity is not in `next`. */
export function staleObjects(previous: KObject[], next: KObject[]): KObject[] {
  const keep = new Set(next.map(identity));
  const seen = new Set<string>();
  return previous.filter((o) => {
    const id = identity(o);
    if (keep.has(id) || seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

export interface PruneOptions {
  /** The app's `syncOptions` (`Prune=false`, `Prune=confirm`); an object's annotation wins. */
  syncOptions?: readonly string[];
  /** `keelson sync --confirm-prune`: objects marked `Prune=confirm` are deleted too. */
  confirmed?: boolean;
}

/** A no longer declared object left in the cluster, and why: Argo CD's `Prune=false`, or waiting for confirmation. */
export interface Extraneous {
  object: KObject;
  why: 'Prune=false' | 'Prune=confirm';
}

function heldForConfirmation(o: KObject, live: KObject | undefined, opts: PruneOptions): boolean {
  return !opts.confirmed && (needsPruneConfirmation(live, opts.syncOptions) || needsPruneConfirmation(o, opts.syncOptions));
}

export async function pruneObjects(
  api: KubeClient,
  stale: KObject[],
  liveOf: (o: KObject) => KObject | undefined,
  owner: { env: string; app: string },
  opts: PruneOptions = {},
): Promise<ObjectResult[]> {
  const out: ObjectResult[] = [];
  for (const o of sortForDelete(stale)) {
    const key = formatKey(o);
    const live = liveOf(o);
    if (isKept(o, opts.syncOptions) || isKept(live, opts.syncOptions)) {
      const argo = [live, o].some((x) => x && syncOption(x, 'Prune', opts.syncOptions) === 'false');
      out.push({ key, action: 'skipped', message: argo ? 'Prune=false: left in the cluster; the app is OutOfSync while it is there, unless it is annotated argocd.argoproj.io/compare-options: IgnoreExtraneous' : 'annotated to keep; left in the cluster and no longer managed' });
      continue;
    }
    if (heldForConfirmation(o, live, opts)) {
      out.push({ key, action: 'skipped', message: `waiting for prune confirmation: run \`keelson sync --env ${owner.env} --app ${owner.app} --confirm-prune\`` });
      continue;
    }
    if (live && (live.metadata.labels?.[LABEL_ENV] !== owner.env || live.metadata.labels?.[LABEL_APP] !== owner.app)) {
      out.push({ key, action: 'skipped', message: 'no longer labelled as this app; not deleted' });
      continue;
    }
    try {
      await api.delete(o, 'Background');
      out.push({ key, action: 'deleted' });
    } catch (err) {
      if (isNotFound(err)) out.push({ key, action: 'deleted', message: 'already gone' });
      else out.push({ key, action: 'failed', message: `${key} delete failed: ${apiMessage(err)}` });
    }
  }
  return out;
}

/**
 * What a prune of `stale` left in the cluster that the app keeps account of (its status says so): objects kept by
 * Argo CD's `Prune=false` and objects waiting for prune confirmation. Keelson's and Flux's keep annotations hand the
 * object over instead (no longer managed).
 */
export function leftExtraneous(stale: KObject[], liveOf: (o: KObject) => KObject | undefined, opts: PruneOptions): Extraneous[] {
  const out: Extraneous[] = [];
  for (const o of stale) {
    const live = liveOf(o);
    if (!live) continue;
    if (isKept(o, opts.syncOptions) || isKept(live, opts.syncOptions)) {
      if ([live, o].some((x) => syncOption(x, 'Prune', opts.syncOptions) === 'false')) out.push({ object: withoutData(o), why: 'Prune=false' });
    } else if (heldForConfirmation(o, live, opts)) out.push({ object: withoutData(o), why: 'Prune=confirm' });
  }
  return out;
}
