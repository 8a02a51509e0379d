/**
 * The revisions an app ran in an environment, newest first, from the sync history: which ones rolled out and became
 * ready (Healthy) and which failed. `keelson rollback` picks its default target from this list.
 */
import type { Store } from '../store/store.js';

export interface AppRevision {
  revision: string;
  version: string | null;
  /** Healthy: the app's rollout at this revision succeeded (it became ready). */
  result: 'Healthy' | 'Failed';
  at: string;
  syncId: number;
}

export interface AppRevisions {
  env: string;
  app: string;
  /** The revision the live app was last applied from (the inventory). */
  live: { revision: string; version: string } | null;
  revisions: AppRevision[];
}

const okActions = new Set(['created', 'configured', 'unchanged', 'scaled']);

export function appRevisions(store: Store, env: string, app: string, limit = 200): AppRevisions {
  const out: AppRevision[] = [];
  const seen = new Set<string>();
  for (const s of store.history({ env, app, limit })) {
    const change = s.changes.find((c) => c.app === app);
    if (!change || change.action === 'skipped') continue;
    if (seen.has(s.revision)) continue;
    seen.add(s.revision);
    const result = okActions.has(change.action) ? 'Healthy' : 'Failed';
    out.push({ revision: s.revision, version: change.to ?? change.from ?? null, result, at: s.startedAt, syncId: s.id });
  }
  const inv = store.inventory(env).find((r) => r.app === app);
  return { env, app, live: inv ? { revision: inv.revision, version: inv.version } : null, revisions: out };
}
