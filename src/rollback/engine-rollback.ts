/**
 * The GitOps rollback done by the running engine (the API and the dashboard's Rollback button): the same edit as
 * `keelson rollback` (the App document and the Environment's entry restored as of a revision), committed and pushed
 * through the engine's ops-repo writer, then deployed. The choice of revision, the edit and the message are the shared
 * GitOps rollback (restore.ts); only the commit is the engine's.
 */
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { EventBus } from '../core/events.js';
import type { CommitResult, EngineWriter } from '../opsrepo/engine-writer.js';
import type { Store } from '../store/store.js';
import { chooseRestore, RollbackRefused, rollbackMessage, type RestoreChoice } from './restore.js';
import { appRevisions, type AppRevision } from './revisions.js';

export { RollbackRefused };

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
  let chosen: RestoreChoice | undefined;
  const result = await d.writer.commit(async ({ dir }) => {
    chosen = await chooseRestore({
      repo: dir,
      env: r.env,
      app: r.app,
      to: r.to,
      reason: r.reason,
      history: () => appRevisions(d.store, r.env, r.app),
      place: 'the ops repository',
      passTo: 'pass "to"',
    });
    const { plan, revision } = chosen;
    if (plan.changes.size === 0) throw new RollbackRefused(`nothing to roll back: the ops repository already declares ${r.app} in ${r.env} as at ${revision.slice(0, 7)}`);
    const changes = [...plan.changes].map(([file, c]) => ({ path: join(dir, file), content: c.after }));
    for (const c of changes) await mkdir(dirname(c.path), { recursive: true });
    const { subject, body } = rollbackMessage({ env: r.env, app: r.app, choice: chosen, who: `${r.actor} (through the Keelson API)` });
    return { changes, message: `${subject}\n\n${body}\n` };
  });
  if (!result || !chosen) throw new RollbackRefused(`nothing to roll back for ${r.app} in ${r.env}`);
  const message = `rolled back ${r.app} in ${r.env} to ${chosen.revision.slice(0, 7)}${chosen.plan.versionThen ? ` (${chosen.plan.versionThen})` : ''}: commit ${result.commit.slice(0, 7)}`;
  d.bus.publish({ type: 'rollback.committed', env: r.env, app: r.app, to: chosen.revision, commit: result.commit, actor: r.actor, message });
  return { ...result, to: chosen.revision, versionFrom: chosen.plan.versionNow, versionTo: chosen.plan.versionThen, message };
}
