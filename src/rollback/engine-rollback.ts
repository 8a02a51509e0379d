/**
 * The GitOps rollback done by the running engine (the API and the dashboard's Rollback button): the same edit as
 * `keelson rollback` (the App document and the Environment's entry restored as of a revision), committed and pushed
 * through the engine's ops-repo writer, then deployed.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { errorMessage } from '../core/errors.js';
import type { EventBus } from '../core/events.js';
import type { CommitResult, EngineWriter } from '../opsrepo/engine-writer.js';
import type { Store } from '../store/store.js';
import { git, planRestore, type RestorePlan } from './declaration.js';
import { appRevisions, type AppRevision } from './revisions.js';

/** A rollback that cannot be done as asked (unknown revision, nothing to roll back): a 409/400 for the API. */
export class RollbackRefused extends Error {
  override name = 'RollbackRefused';
}

export interface RollbackRequest {
  env: string;
  app: string;
  /** Revision (sha, tag, branch) to restore; default: the newest healthy revision whose declaration differs. */
  to?: string;
  reason?: string;
  /** Who asked (token name). */
  actor: string;
}

export interface RollbackResult extends CommitResult {
  /** The revision restored. */
  to: string;
  versionFrom: string | null;
  versionTo: string | null;
  message: string;
}

/** The target the dashboard offers: the newest healthy revision running another version than the live one. */
export function suggestedTarget(store: Store, env: string, app: string): AppRevision | null {
  const h = appRevisions(store, env, app);
  const live = h.live;
  const healthy = h.revisions.filter((r) => r.result === 'Healthy' && r.revision !== live?.revision);
  return healthy.find((r) => r.version !== null && r.version !== live?.version) ?? healthy[0] ?? null;
}

export async function rollbackThroughGit(d: { writer: EngineWriter; store: Store; bus: EventBus }, r: RollbackRequest): Promise<RollbackResult> {
  let chosen: { revision: string; plan: RestorePlan; why: string } | undefined;
  const result = await d.writer.commit(async ({ dir }) => {
    chosen = r.to ? await explicit(dir, r) : await lastHealthy(dir, d.store, r);
    const { plan, revision, why } = chosen;
    if (plan.changes.size === 0) throw new RollbackRefused(`nothing to roll back: the ops repository already declares ${r.app} in ${r.env} as at ${revision.slice(0, 7)}`);
    const changes = [...plan.changes].map(([file, c]) => ({ path: join(dir, file), content: c.after }));
    for (const c of changes) await mkdir(dirname(c.path), { recursive: true });
    const versions = plan.versionNow !== plan.versionThen ? ` (${plan.versionNow ?? '?'} → ${plan.versionThen ?? '?'})` : '';
    const subject = `Roll back ${r.app} in ${r.env} to ${revision.slice(0, 7)}${versions}`;
    const body = [
      `Who: ${r.actor} (through the Keelson API)`,
      `What: restore App "${r.app}" and its entry in Environment "${r.env}" as declared at ${revision}`,
      `Why: ${why}`,
      '',
      `Keelson-Rollback: env=${r.env} app=${r.app} revision=${revision}`,
    ].join('\n');
    return { changes, message: `${subject}\n\n${body}\n` };
  });
  if (!result || !chosen) throw new RollbackRefused(`nothing to roll back for ${r.app} in ${r.env}`);
  const message = `rolled back ${r.app} in ${r.env} to ${chosen.revision.slice(0, 7)}${chosen.plan.versionThen ? ` (${chosen.plan.versionThen})` : ''}: commit ${result.commit.slice(0, 7)}`;
  d.bus.publish({ type: 'rollback.committed', env: r.env, app: r.app, to: chosen.revision, commit: result.commit, actor: r.actor, message });
  return { ...result, to: chosen.revision, versionFrom: chosen.plan.versionNow, versionTo: chosen.plan.versionThen, message };
}

async function explicit(dir: string, r: RollbackRequest) {
  if (r.to!.startsWith('-')) throw new RollbackRefused(`"${r.to}" is not a revision`);
  const revision = (await git(dir, ['rev-parse', '--verify', '--quiet', `${r.to}^{commit}`]).catch(() => '')).trim();
  if (!revision) throw new RollbackRefused(`unknown revision "${r.to}" in the ops repository`);
  const plan = await planRestore({ repo: dir, env: r.env, app: r.app, revision }).catch((err) => {
    throw new RollbackRefused(errorMessage(err));
  });
  return { revision, plan, why: r.reason || `requested rollback to ${revision.slice(0, 7)}` };
}

/** The newest healthy revision whose declaration differs from the head's (what `keelson rollback` picks). */
async function lastHealthy(dir: string, store: Store, r: RollbackRequest) {
  const h = appRevisions(store, r.env, r.app);
  for (const rev of h.revisions) {
    if (rev.result !== 'Healthy') continue;
    const plan = await planRestore({ repo: dir, env: r.env, app: r.app, revision: rev.revision }).catch(() => undefined);
    if (plan && plan.changes.size > 0) {
      return { revision: rev.revision, plan, why: r.reason || `${rev.version ?? 'it'} was the last healthy revision of ${r.app} in ${r.env} (synced ${rev.at})` };
    }
  }
  throw new RollbackRefused(`no earlier healthy revision of ${r.app} in ${r.env} differs from the ops repository (revisions known: ${h.revisions.length}); pass "to"`);
}

