/**
 * The ops repository as a git working copy the CLI writes to (env create, promote, gc…): read its documents,
 * then record edits as one ordinary commit, on the checked-out branch or on a new branch for review.
 * Git runs through its CLI with argv arrays; nothing is changed behind git's back.
 */
import { mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { isMap } from 'yaml';
import { ExitError } from '../core/errors.js';
import { loadDocuments } from '../render/load.js';
import { renderRepository, type RenderResult } from '../render/render.js';
import { API_VERSION } from '../render/schema.js';
import { git, GitError, gitTest } from '../source/git.js';

export interface DocLocation {
  kind: 'App' | 'Environment';
  name: string;
  /** Absolute path of the file. */
  file: string;
  /** Index of the document within its file. */
  index: number;
}

export interface FileChange {
  /** Absolute path inside the working copy. */
  path: string;
  /** New content, or null to delete the file. */
  content: string | null;
}

export interface CommitOptions {
  message: string;
  /** Write the commit to this new branch (starting at HEAD) instead of the checked-out one; the work tree is left alone. */
  branch?: string;
  /** Push the commit to the `origin` remote afterwards. */
  push?: boolean;
}

export class WorkingCopy {
  private constructor(
    /** Directory holding the ops documents (render root). */
    readonly root: string,
    /** Top of the git work tree. */
    readonly gitRoot: string,
    readonly path: string | undefined,
  ) {}

  static async open(dir = '.', path?: string): Promise<WorkingCopy> {
    const root = resolve(dir);
    let top: string;
    try {
      top = await git(['rev-parse', '--show-toplevel'], { cwd: root });
    } catch (err) {
      throw new ExitError(2, `${root} is not a git working copy of the ops repository (${err instanceof GitError ? err.stderr.split('\n')[0] : String(err)}); pass --repo DIR`);
    }
    return new WorkingCopy(root, top, path);
  }

  render(envs?: string[]): Promise<RenderResult> {
    // What this machine has (the users of `user:`) is for the engine to check when it renders the commit: the
    // commands that edit a working copy run on laptops and in CI too.
    return renderRepository({ root: this.root, path: this.path, envs, hostChecks: false });
  }

  /** Where every App and Environment document is declared. */
  async locate(): Promise<DocLocation[]> {
    const { docs } = await loadDocuments(this.root, this.path);
    const out: DocLocation[] = [];
    for (const d of docs) {
      if (!isMap(d.doc.contents)) continue;
      const kind = d.doc.get('kind');
      const name = d.doc.getIn(['metadata', 'name']);
      if (d.doc.get('apiVersion') !== API_VERSION || (kind !== 'App' && kind !== 'Environment') || typeof name !== 'string') continue;
      out.push({ kind, name, file: join(this.root, d.file), index: d.index });
    }
    return out;
  }

  async locateEnvironment(name: string): Promise<DocLocation> {
    const all = await this.locate();
    const hit = all.find((l) => l.kind === 'Environment' && l.name === name);
    if (!hit) {
      const names = all.filter((l) => l.kind === 'Environment').map((l) => l.name).sort();
      throw new ExitError(1, `no Environment named "${name}" in ${this.root} (environments: ${names.join(', ') || 'none'})`);
    }
    return hit;
  }

  read(file: string): Promise<string> {
    return readFile(file, 'utf8');
  }

  rel(file: string): string {
    return relative(this.gitRoot, file).split('\\').join('/');
  }

  /** Records `changes` as one commit; returns its sha. A failing git command is reported with what to do next. */
  async commit(changes: FileChange[], o: CommitOptions): Promise<string> {
    try {
      return await this.commitUnchecked(changes, o);
    } catch (err) {
      if (err instanceof GitError) throw new ExitError(1, err.message);
      throw err;
    }
  }

  private async commitUnchecked(changes: FileChange[], o: CommitOptions): Promise<string> {
    const env = await this.identity();
    const paths = changes.map((c) => this.rel(c.path));
    let sha: string;
    if (o.branch) {
      sha = await this.commitToBranch(changes, o.branch, o.message, env);
    } else {
      const dirty = await git(['status', '--porcelain', '--', ...paths], { cwd: this.gitRoot });
      if (dirty) throw new ExitError(1, `uncommitted changes in ${paths.join(', ')}; commit or discard them first:\n${dirty}`);
      for (const c of changes) {
        if (c.content === null) await unlink(c.path);
        else await writeFile(c.path, c.content);
      }
      await git(['add', '-A', '--', ...paths], { cwd: this.gitRoot });
      await git(['commit', '-q', '--no-verify', '-m', o.message, '--', ...paths], { cwd: this.gitRoot, env });
      sha = await git(['rev-parse', 'HEAD'], { cwd: this.gitRoot });
    }
    if (o.push) {
      const ref = o.branch ?? (await git(['rev-parse', '--abbrev-ref', 'HEAD'], { cwd: this.gitRoot }));
      await git(['push', 'origin', `${sha}:refs/heads/${ref}`], { cwd: this.gitRoot, timeoutMs: 120_000 });
    }
    return sha;
  }

  /** A commit on a new branch through a temporary index: neither the work tree nor the real index is touched. */
  private async commitToBranch(changes: FileChange[], branch: string, message: string, env: Record<string, string>): Promise<string> {
    const ref = `refs/heads/${branch}`;
    if (!(await gitTest(['check-ref-format', ref], { cwd: this.gitRoot }))) throw new ExitError(2, `"${branch}" is not a valid branch name`);
    if (await gitTest(['rev-parse', '--verify', '--quiet', ref], { cwd: this.gitRoot })) {
      throw new ExitError(1, `branch "${branch}" already exists; choose another --branch name`);
    }
    const tmp = await mkdtemp(join(tmpdir(), 'keelson-index-'));
    try {
      const indexEnv = { ...env, GIT_INDEX_FILE: join(tmp, 'index') };
      const opts = { cwd: this.gitRoot, env: indexEnv };
      await git(['read-tree', 'HEAD'], opts);
      for (const [i, c] of changes.entries()) {
        const rel = this.rel(c.path);
        if (c.content === null) {
          await git(['update-index', '--force-remove', '--', rel], opts);
          continue;
        }
        const blobFile = join(tmp, `blob-${i}`);
        await writeFile(blobFile, c.content);
        const blob = await git(['hash-object', '-w', '--', blobFile], opts);
        await git(['update-index', '--add', '--cacheinfo', `100644,${blob},${rel}`], opts);
      }
      const tree = await git(['write-tree'], opts);
      const sha = await git(['commit-tree', tree, '-p', 'HEAD', '-m', message], opts);
      // The zero old value makes this fail rather than move an existing branch.
      await git(['update-ref', ref, sha, '0'.repeat(40)], { ...opts, hint: `Does branch "${branch}" already exist? Choose another --branch name.` });
      return sha;
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }

  /** The user's git identity, or Keelson's when none is configured. */
  private async identity(): Promise<Record<string, string>> {
    const email = await git(['config', 'user.email'], { cwd: this.gitRoot }).catch(() => '');
    if (email || process.env.GIT_AUTHOR_EMAIL) return {};
    return { GIT_AUTHOR_NAME: 'Keelson', GIT_AUTHOR_EMAIL: 'keelson@localhost', GIT_COMMITTER_NAME: 'Keelson', GIT_COMMITTER_EMAIL: 'keelson@localhost' };
  }

  /** Who runs the command: git's user.name <user.email>, or the login name. */
  async owner(): Promise<string> {
    const name = await git(['config', 'user.name'], { cwd: this.gitRoot }).catch(() => '');
    const email = await git(['config', 'user.email'], { cwd: this.gitRoot }).catch(() => '');
    if (email) return name ? `${name} <${email}>` : email;
    return process.env.USER || process.env.LOGNAME || 'unknown';
  }
}
