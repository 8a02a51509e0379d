/**
 * The running engine writes to its ops repository: an ordinary commit on the tracked branch, pushed to the remote,
 * then a refresh so the engine deploys it at once. Used by version automation (`keelson up --auto-update-interval`)
 * and the API's rollback. The edit happens in a temporary worktree of the engine's bare clone, checked out at the
 * remote head; the user's own working copies are never touched.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errorMessage } from '../core/errors.js';
import type { Logger } from '../log.js';
import type { GitSource } from '../source/git-source.js';
import { git, GitError } from '../source/git.js';
import type { FileChange } from './working-copy.js';

export interface CommitAuthor {
  name: string;
  email: string;
}

export const defaultAuthor: CommitAuthor = { name: 'Keelson', email: 'keelson@localhost' };

/** `Name <email>` → author; what `--commit-author` and KEELSON_COMMIT_AUTHOR accept. */
export function parseAuthor(text: string): CommitAuthor {
  const m = /^\s*([^<>]+?)\s*<([^<>\s]+@[^<>\s]+)>\s*$/.exec(text);
  if (!m) throw new Error(`commit author "${text}" is not "Name <email>", e.g. "Keelson <keelson@example.com>"`);
  return { name: m[1], email: m[2] };
}

/** Why the engine cannot write (a 409 for the API): a working-copy remote, a tag or commit ref, a failed push. */
export class OpsWriteError extends Error {
  override name = 'OpsWriteError';
}

/** The edit of one commit, made in the worktree `dir` (the repository top; `opsDir` is the render root inside it). */
export interface EditContext {
  dir: string;
  opsDir: string;
  /** The remote head the edit starts from. */
  base: string;
}

/** What the edit produced: files to write (absolute paths inside `dir`) and the commit message; null = nothing to do. */
export interface Edit {
  changes: FileChange[];
  message: string;
}

export interface CommitResult {
  commit: string;
  base: string;
  branch: string;
}

export interface EngineWriterOptions {
  source: GitSource;
  /** Fetch and deploy what was pushed (the engine's refresh); answers the revision it fetched. */
  refresh: () => Promise<{ revision: string } | undefined>;
  log: Logger;
  author?: CommitAuthor;
  timeoutMs?: number;
}

const rejected = /\[rejected\]|non-fast-forward|fetch first|\[remote rejected\].*(cannot lock|stale info)/i;

export class EngineWriter {
  private writability?: Promise<{ writable: boolean; reason: string | null }>;
  private queue: Promise<unknown> = Promise.resolve();
  readonly author: CommitAuthor;

  constructor(private readonly o: EngineWriterOptions) {
    this.author = o.author ?? defaultAuthor;
  }

  /** Whether commits can be pushed, and if not, why (what the dashboard shows next to a disabled button). */
  status(): Promise<{ writable: boolean; reason: string | null }> {
    this.writability ??= this.checkWritable().then(
      () => ({ writable: true, reason: null }),
      (err) => {
        if (!(err instanceof OpsWriteError)) this.writability = undefined; // e.g. the first fetch has not run yet
        return { writable: false, reason: errorMessage(err) };
      },
    );
    return this.writability;
  }

  /**
   * One commit on the tracked branch: `edit` runs in a fresh worktree at the remote head; its changes are committed
   * and pushed. A push rejected because the branch moved is retried once from the new head. Commits are serialized.
   * Returns null when `edit` returns null (nothing to change).
   */
  commit(edit: (ctx: EditContext) => Promise<Edit | null>): Promise<CommitResult | null> {
    const run = this.queue.then(() => this.commitNow(edit));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async commitNow(edit: (ctx: EditContext) => Promise<Edit | null>): Promise<CommitResult | null> {
    const st = await this.status();
    if (!st.writable) throw new OpsWriteError(st.reason ?? 'the ops repository is not writable');
    const branch = this.o.source.ref!;
    for (let attempt = 1; ; attempt++) {
      const fetched = await this.o.source.fetch();
      const base = fetched.revision;
      const dir = await this.worktree(base);
      let result: CommitResult | null;
      try {
        const opsDir = join(dir, this.o.source.path);
        const e = await edit({ dir, opsDir, base });
        if (!e || e.changes.length === 0) return null;
        const commit = await this.commitIn(dir, e);
        try {
          await this.git(['push', '--quiet', 'origin', `${commit}:refs/heads/${branch}`], dir);
        } catch (err) {
          const stderr = err instanceof GitError ? err.stderr : '';
          if (attempt === 1 && rejected.test(stderr)) {
            this.o.log.info({ branch, base }, 'ops push rejected; retrying from the new head');
            continue;
          }
          throw new OpsWriteError(`pushing to branch "${branch}" of ${this.o.source.repo} failed: ${errorMessage(err).split('\n').slice(0, 3).join(' ')}`);
        }
        result = { commit, base, branch };
      } finally {
        await this.removeWorktree(dir);
      }
      this.o.log.info({ commit: result.commit, branch }, 'ops commit pushed');
      // A poll's fetch that started before the push may answer the old head: refresh until the engine has it.
      for (let i = 0; i < 3; i++) {
        const seen = (await this.o.refresh()) as { revision?: string } | undefined;
        if (!seen || seen.revision === result.commit) break;
      }
      return result;
    }
  }

  private async commitIn(dir: string, e: Edit): Promise<string> {
    const paths: string[] = [];
    for (const c of e.changes) {
      const rel = relative(dir, c.path);
      if (rel.startsWith('..') || isAbsolute(rel)) throw new Error(`refusing to write ${c.path}: outside the ops repository`);
      paths.push(rel);
      if (c.content === null) await unlink(c.path).catch(() => undefined);
      else {
        await mkdir(dirname(c.path), { recursive: true });
        await writeFile(c.path, c.content);
      }
    }
    const { name, email } = this.author;
    const env = { GIT_AUTHOR_NAME: name, GIT_AUTHOR_EMAIL: email, GIT_COMMITTER_NAME: name, GIT_COMMITTER_EMAIL: email };
    await this.git(['add', '-A', '--', ...paths], dir);
    await this.git(['-c', 'commit.gpgsign=false', 'commit', '--quiet', '--no-verify', '-m', e.message, '--', ...paths], dir, env);
    return this.git(['rev-parse', 'HEAD'], dir);
  }

  private async worktree(base: string): Promise<string> {
    // Named like GitSource's temporaries, so a worktree left by a crash is removed at the next start.
    const dir = join(dirname(this.o.source.cloneDir), `.tmp-${basename(this.o.source.cloneDir)}-wt-${randomBytes(6).toString('hex')}`);
    await this.git(['worktree', 'add', '--quiet', '--detach', dir, base], this.o.source.cloneDir);
    return dir;
  }

  private async removeWorktree(dir: string): Promise<void> {
    await this.git(['worktree', 'remove', '--force', dir], this.o.source.cloneDir).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    await this.git(['worktree', 'prune'], this.o.source.cloneDir).catch(() => undefined);
  }

  private async checkWritable(): Promise<void> {
    await this.o.source.init();
    const url = this.o.source.remoteUrl;
    const local = await localDirectory(url);
    if (local !== undefined) {
      const bare = await git(['rev-parse', '--is-bare-repository'], { cwd: local }).catch(() => 'true');
      if (bare !== 'true') {
        throw new OpsWriteError(
          `the ops repository at ${local} is a working copy; use keelson rollback/update there, or point Keelson at a bare or hosted repository`,
        );
      }
    }
    const ref = this.o.source.ref;
    if (ref === undefined) throw new Error('the source has not been fetched yet');
    const isBranch = await this.git(['rev-parse', '--verify', '--quiet', `refs/remotes/origin/${ref}`], this.o.source.cloneDir).then(
      () => true,
      () => false,
    );
    if (!isBranch) throw new OpsWriteError(`Keelson follows "${ref}" of ${this.o.source.repo}, which is not a branch; it can only commit to a branch (--branch)`);
  }

  private git(args: string[], cwd: string, env?: Record<string, string>): Promise<string> {
    return git(args, { cwd, env, timeoutMs: this.o.timeoutMs ?? 120_000 });
  }
}

/** The directory a local remote names (a path or a file:// URL), or undefined for a network remote. */
async function localDirectory(url: string): Promise<string | undefined> {
  let dir: string;
  if (/^file:\/\//i.test(url)) dir = fileURLToPath(url);
  else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url) || /^[^/]+@[^/]+:/.test(url)) return undefined;
  else dir = url;
  return (await stat(dir).then((s) => s.isDirectory(), () => false)) ? dir : undefined;
}
