import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat, utimes } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { TerminalError } from '../core/errors.js';
import type { Logger } from '../log.js';
import { git, GitError, gitTest, redact, defaultGitTimeoutMs, type GitOptions } from './git.js';

export interface GitSourceOptions {
  /** Remote URL, or a local directory (any directory inside a work tree, or a bare repository). */
  repo: string;
  /** Branch, tag or commit sha. Default: the local checkout's branch, or the remote's default branch. */
  ref?: string;
  /** Directory inside the repository holding the ops files. */
  path?: string;
  stateDir: string;
  log: Logger;
  /** Bound for one `git fetch` (and other git commands). Default 60 s. */
  timeoutMs?: number;
  /** Checkouts kept besides the pinned ones. Default 10. */
  keepCheckouts?: number;
}

export interface CommitInfo {
  /** Full commit sha. */
  revision: string;
  /** Subject line. */
  message: string;
  /** `Name <email>`. */
  author: string;
  /** Committer time, ISO 8601 UTC. */
  time: string;
}

export interface FetchResult extends CommitInfo {
  /** The revision differs from the previous one (the last one reported, or what the clone held before). */
  changed: boolean;
  /** The new revision does not descend from the previous one (force-push or moved tag). */
  forced: boolean;
  previous?: string;
  durationMs: number;
}

type ResolvedRef =
  | { kind: 'branch'; name: string }
  | { kind: 'tag'; name: string }
  | { kind: 'head' } // the remote's HEAD when it is detached or not a symref
  | { kind: 'commit'; sha: string };

const allHeadsAndTags = ['+refs/heads/*:refs/remotes/origin/*', '+refs/tags/*:refs/tags/*'];
const logFormat = '--format=%H%x00%an <%ae>%x00%cI%x00%s';
const fullSha = /^([0-9a-f]{40}|[0-9a-f]{64})$/;
const abbrevSha = /^[0-9a-f]{4,64}$/;

// Written once into a new clone: no background work that could race our commands, no extra output.
const cloneConfig: [string, string][] = [
  ['gc.auto', '0'],
  ['gc.autoDetach', 'false'],
  ['maintenance.auto', 'false'],
  ['fetch.writeCommitGraph', 'false'],
  ['fetch.recurseSubmodules', 'false'],
  ['fetch.showForcedUpdates', 'false'],
  ['advice.fetchShowForcedUpdates', 'false'],
  ['core.logAllRefUpdates', 'false'],
];

/**
 * The source stage for one repository: a bare clone in the state dir, fetched on demand,
 * and immutable checkouts of exact commits.
 *
 * ```ts
 * const source = new GitSource({ repo: 'https://github.com/acme/ops', stateDir: '.keelson', log });
 * const { revision, changed } = await source.fetch();
 * if (changed) render(path.join(await source.checkout(revision), source.path));
 * ```
 */
export class GitSource {
  private readonly log: Logger;
  private readonly timeoutMs: number;
  private readonly keepCheckouts: number;
  private url: string;
  private subPath: string;
  private refName: string | undefined;
  private gitDir = '';
  private checkoutsDir = '';
  private initializing?: Promise<void>;
  private resolved?: ResolvedRef;
  private last?: CommitInfo;
  private inflight?: Promise<FetchResult>;
  private readonly checkingOut = new Map<string, Promise<void>>();
  private readonly pins = new Map<string, number>();

  constructor(private readonly opts: GitSourceOptions) {
    if (opts.repo.startsWith('-')) throw new TerminalError(`repo \`${redact(opts.repo)}\` is not a URL or directory`);
    if (opts.ref !== undefined) checkRefName(opts.ref);
    this.url = opts.repo;
    this.refName = opts.ref;
    this.subPath = joinPath('', opts.path);
    this.timeoutMs = opts.timeoutMs ?? defaultGitTimeoutMs;
    this.keepCheckouts = opts.keepCheckouts ?? 10;
    this.log = opts.log.child({ repo: this.repo });
  }

  /** The repository for messages and logs: credentials redacted; a local directory's top level after `init()`. */
  get repo(): string {
    return redact(this.url);
  }

  /** Directory inside the repository holding the ops files (`.` for the top level); final after `init()`. */
  get path(): string {
    return this.subPath;
  }

  /** The followed ref; known after `init()` for local directories, after the first `fetch()` for URLs. */
  get ref(): string | undefined {
    return this.refName;
  }

  /** The bare clone in the state dir; known after `init()`. */
  get cloneDir(): string {
    return this.gitDir;
  }

  /** The remote as configured (credentials included: never log it); a local directory's top level after `init()`. */
  get remoteUrl(): string {
    return this.url;
  }

  /** Creates the clone, or reuses the one from an earlier run. Idempotent; `fetch()` calls it. */
  init(): Promise<void> {
    this.initializing ??= this.doInit().catch((err) => {
      this.initializing = undefined;
      throw err;
    });
    return this.initializing;
  }

  /** Fetches the ref and resolves it to a commit. Concurrent calls share one fetch. */
  fetch(): Promise<FetchResult> {
    this.inflight ??= this.doFetch().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  /** A directory holding the tree at exactly `revision`; never changes afterwards while kept. */
  async checkout(revision: string): Promise<string> {
    await this.init();
    const rev = fullSha.test(revision) ? revision : (await this.commitInfo(revision)).revision;
    const dir = path.join(this.checkoutsDir, rev);
    const now = new Date();
    try {
      await utimes(dir, now, now); // marks it recently used
      return dir;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    let pending = this.checkingOut.get(rev);
    if (!pending) {
      pending = this.materialize(rev, dir).finally(() => this.checkingOut.delete(rev));
      this.checkingOut.set(rev, pending);
    }
    await pending;
    await this.pruneCheckouts(rev);
    return dir;
  }

  /** Keeps the checkout of `revision` from being pruned until the returned release function is called. */
  pin(revision: string): () => void {
    this.pins.set(revision, (this.pins.get(revision) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.pins.get(revision) ?? 1) - 1;
      if (n > 0) this.pins.set(revision, n);
      else this.pins.delete(revision);
    };
  }

  async commitInfo(revision: string): Promise<CommitInfo> {
    await this.init();
    const out = await this.git(['log', '-1', logFormat, '--end-of-options', `${revision}^{commit}`], {
      hint: `Is \`${revision}\` a commit that has been fetched? Call fetch() first.`,
    });
    return parseCommit(out);
  }

  /**
   * A branch, tag or commit of the remote fetched into the clone for a preview (`keelson diff --revision`), without
   * changing the followed ref. A branch or tag is looked up on the remote first; a sha already in the clone is used
   * as it is.
   */
  async fetchRevision(rev: string): Promise<CommitInfo> {
    await this.init();
    checkRefName(rev);
    if (abbrevSha.test(rev) && (await this.tryResolve(rev))) return this.commitInfo(rev);
    const out = await this.git(['ls-remote', 'origin', `refs/heads/${rev}`, `refs/tags/${rev}`], { hint: 'Is the remote reachable?' });
    const names = out.split('\n').map((l) => l.split('\t')[1]);
    const ref = names.includes(`refs/heads/${rev}`) ? `refs/heads/${rev}` : names.includes(`refs/tags/${rev}`) ? `refs/tags/${rev}` : undefined;
    if (ref) {
      const local = `refs/keelson/preview/${ref.slice('refs/'.length)}`;
      await this.fetchRefspecs([`+${ref}:${local}`]);
      return parseCommit(await this.git(['log', '-1', logFormat, `${local}^{commit}`]));
    }
    if (abbrevSha.test(rev)) return this.fetchCommit(rev);
    throw new TerminalError(`\`${rev}\` is neither a branch, a tag nor a commit of ${this.repo}; push it first, or preview a local repository with --repo DIR`);
  }

  private async doInit(): Promise<void> {
    const local = await localRepository(this.opts.repo);
    if (local) {
      this.url = local.top;
      this.subPath = joinPath(local.prefix, this.opts.path);
      this.refName ??= local.branch;
    }
    const name = cloneName(this.url);
    this.gitDir = path.join(this.opts.stateDir, 'git', name);
    this.checkoutsDir = path.join(this.opts.stateDir, 'checkouts', name);
    await mkdir(this.checkoutsDir, { recursive: true });
    await removeTemporaries(this.checkoutsDir);
    await removeTemporaries(path.dirname(this.gitDir), `.tmp-${name}-`);
    if (await exists(path.join(this.gitDir, 'HEAD'))) {
      await removeStaleLocks(this.gitDir);
      // The clone's only worktrees are the engine writer's temporaries, just removed above. One whose `git worktree
      // add` was killed leaves its metadata locked with a null HEAD, which fails every fetch and which `git worktree
      // prune` keeps: forget them all.
      await rm(path.join(this.gitDir, 'worktrees'), { recursive: true, force: true });
      await this.git(['config', 'remote.origin.url', this.url]); // credentials may have changed
      return;
    }
    // Built aside and renamed, so an existing clone directory is always complete.
    const parent = path.dirname(this.gitDir);
    const tmp = path.join(parent, `.tmp-${name}-${randomBytes(4).toString('hex')}`);
    await mkdir(parent, { recursive: true });
    try {
      await git(['init', '--bare', '--quiet', tmp], { cwd: parent, timeoutMs: this.timeoutMs });
      for (const [key, value] of [...cloneConfig, ['remote.origin.url', this.url]])
        await git(['config', key, value], { cwd: tmp, timeoutMs: this.timeoutMs });
      await rename(tmp, this.gitDir);
      this.log.info({ dir: this.gitDir }, 'source clone created');
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }

  private async doFetch(): Promise<FetchResult> {
    const started = performance.now();
    await this.init();
    const ref = (this.resolved ??= await this.resolveRef());
    if (ref.kind === 'commit' && this.last) {
      // A commit never moves: nothing to fetch.
      return { ...this.last, changed: false, forced: false, previous: this.last.revision, durationMs: elapsed(started) };
    }

    let previous = this.last?.revision;
    let info: CommitInfo;
    if (ref.kind === 'commit') {
      info = await this.fetchCommit(ref.sha);
    } else {
      const [refspec, tracking] = refspecFor(ref);
      if (!this.last) previous = await this.tryResolve(tracking);
      await this.fetchRefspecs([refspec]);
      info = parseCommit(await this.git(['log', '-1', logFormat, `${tracking}^{commit}`]));
    }

    const changed = info.revision !== previous;
    let forced = false;
    if (changed && previous) {
      forced = !(await gitTest(['merge-base', '--is-ancestor', previous, info.revision], this.gitOpts()));
      if (forced) this.log.warn({ previous, revision: info.revision }, 'source force-pushed');
    }
    this.last = info;
    const durationMs = elapsed(started);
    this.log.debug({ ref: this.refName, revision: info.revision, changed, durationMs }, 'source fetched');
    return { ...info, changed, forced, previous, durationMs };
  }

  private async resolveRef(): Promise<ResolvedRef> {
    const ref = this.refName;
    if (ref === undefined) {
      const out = await this.git(['ls-remote', '--symref', 'origin', 'HEAD'], { hint: 'Is the remote reachable?' });
      const branch = /^ref: refs\/heads\/(\S+)\tHEAD$/m.exec(out)?.[1];
      this.refName = branch ?? 'HEAD';
      return branch ? { kind: 'branch', name: branch } : { kind: 'head' };
    }
    if (ref === 'HEAD') return { kind: 'head' };
    if (ref.startsWith('refs/heads/')) return { kind: 'branch', name: ref.slice('refs/heads/'.length) };
    if (ref.startsWith('refs/tags/')) return { kind: 'tag', name: ref.slice('refs/tags/'.length) };
    if (fullSha.test(ref)) return { kind: 'commit', sha: ref };
    const out = await this.git(['ls-remote', 'origin', `refs/heads/${ref}`, `refs/tags/${ref}`], {
      hint: 'Is the remote reachable?',
    });
    const names = out.split('\n').map((l) => l.split('\t')[1]);
    if (names.includes(`refs/heads/${ref}`)) return { kind: 'branch', name: ref };
    if (names.includes(`refs/tags/${ref}`)) return { kind: 'tag', name: ref };
    if (abbrevSha.test(ref)) return { kind: 'commit', sha: ref };
    throw new GitError(
      `ref \`${ref}\` of ${this.repo} is neither a branch, a tag nor a commit sha\nDoes ref \`${ref}\` exist on the remote?`,
      'git ls-remote',
      '',
      null,
      false,
    );
  }

  private async fetchCommit(sha: string): Promise<CommitInfo> {
    if (!(await this.tryResolve(sha))) {
      try {
        // Servers allow fetching a full sha (protocol v2); an abbreviated one needs all refs.
        if (!fullSha.test(sha)) throw new Error('abbreviated');
        await this.fetchRefspecs([`+${sha}:refs/keelson/commits/${sha}`]);
      } catch {
        await this.fetchRefspecs(allHeadsAndTags);
      }
    }
    const out = await this.git(['log', '-1', logFormat, `${sha}^{commit}`], {
      hint: `Does commit \`${sha}\` exist on the remote (on a branch or tag)?`,
    });
    return parseCommit(out);
  }

  private async fetchRefspecs(refspecs: string[]): Promise<void> {
    const args = ['fetch', '--quiet', '--no-tags', '--no-write-fetch-head', '--no-recurse-submodules', 'origin', ...refspecs];
    try {
      await this.git(args);
    } catch (err) {
      if (err instanceof GitError && err.timedOut) await removeStaleLocks(this.gitDir);
      throw err;
    }
  }

  private async tryResolve(rev: string): Promise<string | undefined> {
    try {
      return await this.git(['rev-parse', '--quiet', '--verify', '--end-of-options', `${rev}^{commit}`]);
    } catch (err) {
      if (err instanceof GitError && err.exitCode === 1) return undefined;
      throw err;
    }
  }

  private async materialize(rev: string, dir: string): Promise<void> {
    const tmp = path.join(this.checkoutsDir, `.tmp-${rev}-${randomBytes(4).toString('hex')}`);
    const env = { GIT_INDEX_FILE: `${tmp}.index` }; // a private index: the clone's own is never touched
    await mkdir(tmp, { recursive: true });
    try {
      await this.git(['read-tree', `${rev}^{commit}`], {
        env,
        hint: `Is \`${rev}\` a commit that has been fetched? Call fetch() first.`,
      });
      await this.git(['--work-tree', tmp, 'checkout-index', '--all', '--force'], { env });
      await rename(tmp, dir).catch(async (err: NodeJS.ErrnoException) => {
        if (!(await exists(dir))) throw err; // else another process made it first
      });
      this.log.debug({ revision: rev, dir }, 'source checkout created');
    } finally {
      await rm(tmp, { recursive: true, force: true });
      await rm(env.GIT_INDEX_FILE, { force: true });
    }
  }

  private async pruneCheckouts(current: string): Promise<void> {
    const entries = (await readdir(this.checkoutsDir)).filter((e) => !e.startsWith('.'));
    if (entries.length <= this.keepCheckouts) return;
    const dated = await Promise.all(
      entries.map(async (e) => ({ e, mtime: (await stat(path.join(this.checkoutsDir, e)).catch(() => undefined))?.mtimeMs ?? 0 })),
    );
    dated.sort((a, b) => b.mtime - a.mtime);
    for (const { e } of dated.slice(this.keepCheckouts)) {
      if (e === current || this.pins.has(e) || this.checkingOut.has(e)) continue;
      await rm(path.join(this.checkoutsDir, e), { recursive: true, force: true });
    }
  }

  private gitOpts(extra: Partial<GitOptions> = {}): GitOptions {
    return { cwd: this.gitDir, timeoutMs: this.timeoutMs, ...extra };
  }

  private async git(args: string[], extra: Partial<GitOptions> = {}): Promise<string> {
    try {
      return await git(args, this.gitOpts(extra));
    } catch (err) {
      if (!(err instanceof GitError)) throw err;
      // Name the repository and ref: the command alone says `origin`.
      const subject = `source ${this.repo}${this.refName ? ` (ref \`${this.refName}\`)` : ''}`;
      throw new GitError(`${subject}: ${err.message}`, err.command, err.stderr, err.exitCode, err.timedOut);
    }
  }
}

function refspecFor(ref: Exclude<ResolvedRef, { kind: 'commit' }>): [refspec: string, tracking: string] {
  switch (ref.kind) {
    case 'branch':
      return [`+refs/heads/${ref.name}:refs/remotes/origin/${ref.name}`, `refs/remotes/origin/${ref.name}`];
    case 'tag':
      return [`+refs/tags/${ref.name}:refs/tags/${ref.name}`, `refs/tags/${ref.name}`];
    case 'head':
      return ['+HEAD:refs/keelson/HEAD', 'refs/keelson/HEAD'];
  }
}

/** Rejects names git would reject, and anything that could be read as an option. */
function checkRefName(ref: string): void {
  const bad =
    ref === '' ||
    ref.startsWith('-') ||
    ref.startsWith('/') ||
    ref.endsWith('/') ||
    ref.endsWith('.') ||
    ref.endsWith('.lock') ||
    ref.includes('..') ||
    ref.includes('@{') ||
    ref.includes('//') ||
    /[\x00-\x20\x7f~^:?*[\\]/.test(ref);
  if (bad) throw new TerminalError(`ref \`${ref}\` is not a valid git branch, tag or commit name`);
}

function parseCommit(out: string): CommitInfo {
  const [revision, author, time, message] = out.split('\0');
  return { revision, author, time: new Date(time).toISOString(), message: message ?? '' };
}

/** `path` joined under `prefix`, normalized, `.` for the top level; never outside the repository. */
function joinPath(prefix: string, sub: string | undefined): string {
  const joined = path.posix.normalize(path.posix.join(prefix || '.', sub ?? '.')).replace(/\/$/, '');
  if (joined === '..' || joined.startsWith('../') || path.posix.isAbsolute(joined))
    throw new TerminalError(`path \`${sub}\` leaves the repository; give a directory inside it`);
  return joined;
}

async function localRepository(
  repo: string,
): Promise<{ top: string; prefix: string; branch: string } | undefined> {
  const dir = path.resolve(repo);
  if (!(await stat(dir).then((s) => s.isDirectory(), () => false))) return undefined; // a URL
  const opts = { cwd: dir, hint: `Is \`${repo}\` inside a git repository? Run \`git init\` there, or pass a URL.` };
  const bare = (await git(['rev-parse', '--is-bare-repository'], opts)) === 'true';
  let top = dir;
  let prefix = '';
  if (!bare) [top, prefix = ''] = (await git(['rev-parse', '--show-toplevel', '--show-prefix'], opts)).split('\n');
  const branch = await git(['symbolic-ref', '--quiet', '--short', 'HEAD'], { cwd: top }).catch(() => 'HEAD');
  return { top, prefix, branch };
}

/** `<name>-<hash>`: readable, and distinct for distinct URLs (credentials excluded, so rotating a token keeps the clone). */
function cloneName(url: string): string {
  const base = (url.replace(/[/:]+$/, '').split(/[/:]/).pop() ?? '').replace(/\.git$/, '');
  const name = base.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[.-]+/, '').slice(0, 40) || 'repo';
  const hash = createHash('sha256').update(redact(url)).digest('hex').slice(0, 12);
  return `${name}-${hash}`;
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

/** Lock files left by a git killed mid-command (timeout, crash); nothing else of ours uses the clone. */
async function removeStaleLocks(gitDir: string): Promise<void> {
  const top = await readdir(gitDir).catch(() => [] as string[]);
  const refs = await readdir(path.join(gitDir, 'refs'), { recursive: true }).catch(() => [] as string[]);
  const locks = [...top, ...refs.map((e) => path.join('refs', e))].filter((e) => e.endsWith('.lock'));
  for (const e of locks) await rm(path.join(gitDir, e), { force: true });
}

async function removeTemporaries(dir: string, prefix = '.tmp-'): Promise<void> {
  for (const e of await readdir(dir).catch(() => [] as string[]))
    if (e.startsWith(prefix)) await rm(path.join(dir, e), { recursive: true, force: true });
}

function elapsed(started: number): number {
  return Math.round(performance.now() - started);
}
