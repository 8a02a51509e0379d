/** `keelson where APP`: what version of an app runs in which environment, since when, from which commit. */
import type { StatusView } from '../engine/engine.js';
import type { Store } from '../store/store.js';

export interface Placement {
  env: string;
  /** Version running now (null when not deployed). */
  version: string | null;
  desiredVersion: string | null;
  health: string;
  sync: string;
  /** When the running version was deployed, and from which ops-repository commit. */
  since: string | null;
  revision: string | null;
  phase: string;
}

export interface WhereView {
  app: string;
  environments: Placement[];
}

const deploying = new Set(['created', 'configured']);

export function whereIs(app: string, status: StatusView, store: Store): WhereView {
  const environments: Placement[] = [];
  for (const env of status.environments) {
    const a = env.apps.find((x) => x.name === app);
    if (!a) continue;
    const { since, revision } = deployedSince(store, env.name, app, a.version);
    environments.push({
      env: env.name,
      version: a.version,
      desiredVersion: a.desiredVersion,
      health: a.health,
      sync: a.sync,
      since,
      revision: revision ?? a.revision,
      phase: (env as { phase?: string }).phase ?? 'Active',
    });
  }
  return { app, environments };
}

/** The oldest sync of the unbroken run of syncs that left `version` deployed (a config change keeps the version). */
function deployedSince(store: Store, env: string, app: string, version: string | null): { since: string | null; revision: string | null } {
  if (version === null) return { since: null, revision: null };
  let found: { since: string; revision: string } | null = null;
  for (const s of store.history({ env, app, limit: 500 })) {
    const c = s.changes.find((x) => x.app === app && (deploying.has(x.action) || x.action === 'deleted'));
    if (!c) continue;
    if (c.action === 'deleted' || (c.to !== undefined && c.to !== version)) break;
    found = { since: s.startedAt, revision: s.revision };
    if (c.from !== undefined && c.from !== version) break; // the sync that brought this version in
  }
  if (found) return found;
  const inv = store.inventory(env).find((r) => r.app === app);
  return inv ? { since: inv.appliedAt, revision: inv.revision } : { since: null, revision: null };
}

export function formatWhere(w: WhereView): string {
  if (w.environments.length === 0) return `app "${w.app}" runs in no environment`;
  const rows = [['ENVIRONMENT', 'VERSION', 'HEALTH', 'SYNC', 'SINCE', 'COMMIT']];
  for (const p of w.environments) {
    const version = p.version && p.desiredVersion && p.version !== p.desiredVersion ? `${p.version}→${p.desiredVersion}` : p.version ?? `- (wants ${p.desiredVersion ?? '-'})`;
    rows.push([p.phase === 'Expired' ? `${p.env} (Expired)` : p.env, version, p.health, p.sync, p.since ?? '-', p.revision?.slice(0, 7) ?? '-']);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}
