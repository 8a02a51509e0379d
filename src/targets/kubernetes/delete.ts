/**
 * Prune: delete what Keelson applied before and no longer declares, in reverse apply order, unless an object is
 * annotated to be kept (`keelson.dev/prune: disabled`, Argo CD `sync-options: Prune=false`, Flux
 * `kustomize.toolkit.fluxcd.io/prune: disabled`) or no longer carries Keelson's labels (someone adopted it).
 */
import { apiMessage, isNotFound, type KubeClient } from './client.js';
import type { ObjectResult } from './apply.js';
import { formatKey, identity, isKept, LABEL_APP, LABEL_ENV, type KObject } from './objects.js';
import { sortForDelete } from './order.js';

/** Objects of `previous` whose identity is not in `next`. */
export function staleObjects(previous: KObject[], next: KObject[]): KObject[] {
  const keep = new Set(next.map(identity));
  return previous.filter((o) => !keep.has(identity(o)));
}

export async function pruneObjects(
  api: KubeClient,
  stale: KObject[],
  liveOf: (o: KObject) => KObject | undefined,
  owner: { env: string; app: string },
): Promise<ObjectResult[]> {
  const out: ObjectResult[] = [];
  for (const o of sortForDelete(stale)) {
    const key = formatKey(o);
    const live = liveOf(o);
    if (isKept(o) || isKept(live)) {
      out.push({ key, action: 'skipped', message: 'annotated to keep; left in the cluster and no longer managed' });
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
