/**
 * The GitOps rollback, one mechanism whoever asks for it: `keelson rollback` (a working copy on the user's machine)
 * and the running engine (the API and the dashboard's Rollback button, through its ops-repo writer). Both
 *   1. choose the revision to restore (`chooseRestore`): the one asked for, or the newest revision at which the app
 *      was healthy whose declaration differs from the repository's;
 *   2. restore the app's declaration as of that revision (`planRestore`, declaration.ts: its App document and the
 *      Environment's entry, the rest of each file untouched);
 *   3. commit it with the same message (`rollbackMessage`, with a `Keelson-Rollback:` trailer).
 * Only who commits and pushes differs. The engine then deploys the commit as it deploys any other: a rollback is an
 * ordinary sync of an earlier declaration, never a change behind git's back.
 *
 * (The other ways back, which never touch git, are a target's: see `revertToStable` in src/targets/local/revert.ts
 * and the Kubernetes target's re-apply of the previous inventory; README "Rollbacks".)
 */
import { errorMessage } from '../core/errors.js';
import { git, planRestore, type RestorePlan } from './declaration.js';
import type { AppRevisions } from './revisions.js';

/** A rollback that cannot be done as asked (unknown revision, nothing to roll back): a 409/400 for the API. */
export class RollbackRefused extends Error {
  override name = 'RollbackRefused';
  /** The request itself is wrong (an unknown revision), not the repository's state. */
  readonly badRequest: boolean;
  constructor(message: string, o: { badRequest?: boolean } = {}) {
    super(message);
    this.badRequest = o.badRequest ?? false;
  }
}

export interface RestoreChoice {
  /** The full commit id restored. */
  revision: string;
  plan: RestorePlan;
  /** The commit's `Why:` line. */
  why: string;
}

export interface RestoreRequest {
  /** A git working copy or checkout of the ops repository. */
  repo: string;
  env: string;
  app: string;
  /** Revision (sha, tag, branch) to restore; default: the newest healthy revision whose declaration differs. */
  to?: string;
  reason?: string;
  /** The app's revisions as the engine saw them (asked only without `to`). */
  history: () => AppRevisions | Promise<AppRevisions>;
  /** How errors name the repository and tell what to do: `the ops repository` / `pass "to"`. */
  place: string;
  fetchHint?: string;
  passTo: string;
}

export async function chooseRestore(r: RestoreRequest): Promise<RestoreChoice> {
  if (r.to !== undefined) {
    const revision = await resolveRevision(r.repo, r.to);
    if (!revision) throw new RollbackRefused(`unknown revision "${r.to}" in ${r.place}${r.fetchHint ? `; ${r.fetchHint}` : ''}`, { badRequest: true });
    const plan = await planRestore({ repo: r.repo, env: r.env, app: r.app, revision }).catch((err) => {
      throw new RollbackRefused(errorMessage(err));
    });
    return { revision, plan, why: r.reason || `requested rollback to ${revision.slice(0, 7)}` };
  }
  const h = await r.history();
  for (const rev of h.revisions) {
    if (rev.result !== 'Healthy') continue;
    const revision = await resolveRevision(r.repo, rev.revision);
    if (!revision) continue;
    const plan = await planRestore({ repo: r.repo, env: r.env, app: r.app, revision }).catch(() => undefined);
    if (plan && plan.changes.size > 0) {
      return { revision, plan, why: r.reason || `${rev.version ?? 'it'} was the last healthy revision of ${r.app} in ${r.env} (synced ${rev.at})` };
    }
  }
  throw new RollbackRefused(`no earlier healthy revision of ${r.app} in ${r.env} differs from ${r.place} (revisions known: ${h.revisions.length}); ${r.passTo}`);
}

/** The rollback commit's subject and body (the same for `keelson rollback` and the engine). */
export function rollbackMessage(o: { env: string; app: string; choice: RestoreChoice; who: string }): { subject: string; body: string } {
  const { env, app, choice } = o;
  const { plan, revision } = choice;
  const versions = plan.versionNow !== plan.versionThen ? ` (${plan.versionNow ?? '?'} → ${plan.versionThen ?? '?'})` : '';
  const subject = `Roll back ${app} in ${env} to ${revision.slice(0, 7)}${versions}`;
  const body = [
    `Who: ${o.who}`,
    `What: restore App "${app}" and its entry in Environment "${env}" as declared at ${revision}`,
    `Why: ${choice.why}`,
    '',
    `Keelson-Rollback: env=${env} app=${app} revision=${revision}`,
  ].join('\n');
  return { subject, body };
}

/** The commit a revision names in the repository, or undefined (an option-like name is never passed to git). */
async function resolveRevision(repo: string, rev: string): Promise<string | undefined> {
  if (rev.startsWith('-')) return undefined;
  const out = await git(repo, ['rev-parse', '--verify', '--quiet', `${rev}^{commit}`]).catch(() => '');
  return out.trim() || undefined;
}
