import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import { silentLogger } from '../log.js';
import { git, GitError } from './git.js';
import { GitSource, type GitSourceOptions } from './git-source.js';

const identity = ['-c', 'user.name=t', '-c', 'user.email=t@t', '-c', 'commit.gpgsign=false', '-c', 'tag.gpgsign=false'];

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'keelson-source-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A bare origin and a work tree that pushes to it. */
async function gitdir() {
  const root = await tempDir();
  const origin = path.join(root, 'origin.git');
  const work = path.join(root, 'work');
  const stateDir = path.join(root, 'state');
  await git(['init', '-q', '--bare', '-b', 'main', origin], { cwd: root });
  await git(['init', '-q', '-b', 'main', work], { cwd: root });
  await git(['remote', 'add', 'origin', origin], { cwd: work });
  const run = (...args: string[]) => git(args, { cwd: work });
  return {
    root,
    origin,
    work,
    stateDir,
    run,
    /** Writes files, commits them and pushes `main` (forced, so a reset + commit is a force-push). */
    async commit(files: Record<string, string>, message = 'change'): Promise<string> {
      for (const [file, content] of Object.entries(files)) {
        await mkdir(path.dirname(path.join(work, file)), { recursive: true });
        await writeFile(path.join(work, file), content);
      }
      await run('add', '-A');
      await run(...identity, 'commit', '-q', '--allow-empty', '-m', message);
      await run('push', '-q', '--force', 'origin', 'HEAD:main');
      return run('rev-parse', 'HEAD');
    },
    source(opts: Partial<GitSourceOptions> = {}): GitSource {
      return new GitSource({ repo: origin, stateDir, log: silentLogger(), ...opts });
    },
  };
}

function capturedLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(JSON.parse(String(chunk)));
      done();
    },
  });
  return { log: pino({ level: 'debug' }, stream), lines };
}

describe('GitSource.fetch', () => {
  it('follows the remote default branch and reports the commit', async () => {
    const g = await gitdir();
    const first = await g.commit({ 'a.txt': 'one' }, 'first commit');
    const source = g.source();
    const r = await source.fetch();
    expect(r).toMatchObject({ revision: first, changed: true, forced: false, message: 'first commit', author: 't <t@t>' });
    expect(r.previous).toBeUndefined();
    expect(r.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(source.ref).toBe('main');
    expect(source.path).toBe('.');
    expect(await readdir(path.join(g.stateDir, 'git'))).toEqual([expect.stringMatching(/^origin-[0-9a-f]{12}$/)]);
  });

  it('reports a new commit as changed and no change as unchanged', async () => {
    const g = await gitdir();
    const first = await g.commit({ 'a.txt': 'one' });
    const source = g.source();
    await source.fetch();
    expect(await source.fetch()).toMatchObject({ revision: first, changed: false, forced: false, previous: first });
    const second = await g.commit({ 'a.txt': 'two' }, 'second');
    expect(await source.fetch()).toMatchObject({ revision: second, changed: true, forced: false, previous: first, message: 'second' });
  });

  it('follows a force-push and says so', async () => {
    const g = await gitdir();
    await g.commit({ 'a.txt': 'one' });
    const bad = await g.commit({ 'a.txt': 'bad' });
    const { log, lines } = capturedLogger();
    const source = g.source({ log });
    await source.fetch();
    await g.run('reset', '-q', '--hard', 'HEAD~1');
    const rewritten = await g.commit({ 'a.txt': 'good' });
    const r = await source.fetch();
    expect(r).toMatchObject({ revision: rewritten, changed: true, forced: true, previous: bad });
    expect(lines).toContainEqual(expect.objectContaining({ msg: 'source force-pushed', previous: bad, revision: rewritten }));
  });

  it('follows a tag to its commit, also when the tag moves', async () => {
    const g = await gitdir();
    const tagged = await g.commit({ 'a.txt': 'one' });
    await g.run(...identity, 'tag', '-a', '-m', 'release', 'v1');
    await g.run('push', '-q', 'origin', 'v1');
    await g.commit({ 'a.txt': 'two' });
    const source = g.source({ ref: 'v1' });
    expect(await source.fetch()).toMatchObject({ revision: tagged, changed: true });
    const later = await g.commit({ 'a.txt': 'three' });
    await g.run(...identity, 'tag', '-f', '-a', '-m', 'release', 'v1');
    await g.run('push', '-q', '--force', 'origin', 'v1');
    expect(await source.fetch()).toMatchObject({ revision: later, changed: true, forced: false, previous: tagged });
  });

  it('prefers a branch over a tag of the same name', async () => {
    const g = await gitdir();
    const tagged = await g.commit({ 'a.txt': 'one' });
    await g.run('tag', 'prod');
    await g.run('push', '-q', 'origin', 'prod');
    const head = await g.commit({ 'a.txt': 'two' });
    await g.run('push', '-q', 'origin', 'HEAD:refs/heads/prod');
    expect((await g.source({ ref: 'prod' }).fetch()).revision).toBe(head);
    expect((await g.source({ ref: 'refs/tags/prod' }).fetch()).revision).toBe(tagged);
  });

  it('pins a full or abbreviated commit sha', async () => {
    const g = await gitdir();
    const pinned = await g.commit({ 'a.txt': 'one' }, 'pinned');
    const head = await g.commit({ 'a.txt': 'two' });
    const full = g.source({ ref: pinned });
    expect(await full.fetch()).toMatchObject({ revision: pinned, changed: true, message: 'pinned' });
    expect(await full.fetch()).toMatchObject({ revision: pinned, changed: false });
    const short = g.source({ ref: head.slice(0, 8), stateDir: path.join(g.root, 'state2') });
    expect(await short.fetch()).toMatchObject({ revision: head, changed: true });
  });

  it('says which ref is missing', async () => {
    const g = await gitdir();
    await g.commit({ 'a.txt': 'one' });
    const err = await g.source({ ref: 'nope' }).fetch().catch((e) => e);
    expect(err).toBeInstanceOf(GitError);
    expect(err.message).toContain('Does ref `nope` exist on the remote?');
  });

  it('rejects a ref that could be read as an option', async () => {
    const g = await gitdir();
    expect(() => g.source({ ref: '--upload-pack=touch /tmp/x' })).toThrow(/not a valid git branch, tag or commit name/);
  });

  it('fails clearly while the remote is unreachable and recovers afterwards', async () => {
    const g = await gitdir();
    const first = await g.commit({ 'a.txt': 'one' });
    const source = g.source();
    await source.fetch();
    await rename(g.origin, `${g.origin}.away`);
    const err = await source.fetch().catch((e) => e);
    expect(err).toBeInstanceOf(GitError);
    expect(err.message).toContain(`source ${g.origin} (ref \`main\`)`);
    expect(err.message).toContain('Is the repository URL or path correct?');
    await rename(`${g.origin}.away`, g.origin);
    const second = await g.commit({ 'a.txt': 'two' });
    expect(await source.fetch()).toMatchObject({ revision: second, changed: true, previous: first });
  });

  it('never puts credentials of the URL in errors', async () => {
    const root = await tempDir();
    const source = new GitSource({ repo: 'http://alice:s3cret@127.0.0.1:1/ops.git', stateDir: root, log: silentLogger() });
    const err = await source.fetch().catch((e) => e);
    expect(err).toBeInstanceOf(GitError);
    expect(err.message).toContain('http://***@127.0.0.1:1/ops.git');
    expect(err.message).toContain('Is the remote reachable');
    expect(err.message).not.toContain('s3cret');
  });

  it('shares one fetch between concurrent callers', async () => {
    const g = await gitdir();
    const first = await g.commit({ 'a.txt': 'one' });
    const { log, lines } = capturedLogger();
    const source = g.source({ log });
    const calls = [source.fetch(), source.fetch(), source.fetch()];
    expect(calls[1]).toBe(calls[0]);
    expect(calls[2]).toBe(calls[0]);
    const results = await Promise.all(calls);
    expect(results.map((r) => r.revision)).toEqual([first, first, first]);
    expect(lines.filter((l) => l.msg === 'source fetched')).toHaveLength(1);
    const next = source.fetch();
    expect(next).not.toBe(calls[0]);
    await next;
  });

  it('reuses the clone after a restart', async () => {
    const g = await gitdir();
    const first = await g.commit({ 'a.txt': 'one' });
    await g.source().fetch();
    const { log, lines } = capturedLogger();
    const restarted = g.source({ log });
    expect(await restarted.fetch()).toMatchObject({ revision: first, changed: false, previous: first });
    expect(lines.some((l) => l.msg === 'source clone created')).toBe(false);
  });

  it('fetches after a restart when a killed `git worktree add` left a half-made worktree in the clone', async () => {
    // What `git worktree add` leaves when killed while initializing (found by the crash driver, engine-commit mode):
    // the worktree's metadata in the clone, locked, its HEAD the null sha, its directory (a temporary) gone. Every
    // fetch then fails ("bad object worktrees/…/HEAD"), and `git worktree prune` keeps locked entries.
    const g = await gitdir();
    await g.commit({ 'a.txt': 'one' });
    const source = g.source();
    await source.fetch();
    const meta = path.join(source.cloneDir, 'worktrees', '-tmp-x-wt-0123456789ab');
    await mkdir(meta, { recursive: true });
    await writeFile(path.join(meta, 'HEAD'), `${'0'.repeat(40)}\n`);
    await writeFile(path.join(meta, 'commondir'), '../..\n');
    await writeFile(path.join(meta, 'gitdir'), `${path.join(path.dirname(source.cloneDir), '.tmp-x-wt-0123456789ab', '.git')}\n`);
    await writeFile(path.join(meta, 'locked'), 'initializing\n');
    const second = await g.commit({ 'a.txt': 'two' });
    expect(await g.source().fetch()).toMatchObject({ revision: second, changed: true });
  });
});

describe('GitSource with a local directory', () => {
  it('uses the enclosing repository, its branch, and the subdirectory as path', async () => {
    const g = await gitdir();
    await g.run('checkout', '-q', '-b', 'dev');
    await g.commit({ 'examples/apps/web.yaml': 'name: web' });
    const head = await g.run('rev-parse', 'HEAD');
    const source = new GitSource({ repo: path.join(g.work, 'examples'), path: 'apps', stateDir: g.stateDir, log: silentLogger() });
    await source.init();
    expect(source.path).toBe('examples/apps');
    expect(source.ref).toBe('dev');
    expect(source.repo).toBe(g.work);
    const r = await source.fetch();
    expect(r.revision).toBe(head);
    const dir = await source.checkout(r.revision);
    expect(await readFile(path.join(dir, source.path, 'web.yaml'), 'utf8')).toBe('name: web');
  });

  it('follows a detached HEAD', async () => {
    const g = await gitdir();
    await g.commit({ 'a.txt': 'one' });
    await g.run('checkout', '-q', '--detach');
    const head = await g.commit({ 'a.txt': 'two' });
    const source = new GitSource({ repo: g.work, stateDir: g.stateDir, log: silentLogger() });
    expect(await source.fetch()).toMatchObject({ revision: head, changed: true });
    expect(source.ref).toBe('HEAD');
  });

  it('keeps the path of the top level as given', async () => {
    const g = await gitdir();
    await g.commit({ 'a.txt': 'one' });
    const source = new GitSource({ repo: g.work, path: './envs/', stateDir: g.stateDir, log: silentLogger() });
    await source.init();
    expect(source.path).toBe('envs');
    expect(() => new GitSource({ repo: g.work, path: '../x', stateDir: g.stateDir, log: silentLogger() })).toThrow(
      /leaves the repository/,
    );
  });

  it('explains a directory outside any repository', async () => {
    const root = await tempDir();
    const err = await new GitSource({ repo: root, stateDir: path.join(root, 'state'), log: silentLogger() }).init().catch((e) => e);
    expect(err).toBeInstanceOf(GitError);
    expect(err.message).toContain('Run `git init` there, or pass a URL.');
  });
});

describe('GitSource.checkout', () => {
  it('holds exactly the tree of the commit, unaffected by later commits', async () => {
    const g = await gitdir();
    const first = await g.commit({ 'a.txt': 'one', 'dir/b.txt': 'bee' });
    const source = g.source();
    const dir = await source.checkout((await source.fetch()).revision);
    expect(path.dirname(path.dirname(dir))).toBe(path.join(g.stateDir, 'checkouts'));
    expect(path.basename(dir)).toBe(first);

    await g.run('rm', '-q', 'dir/b.txt');
    const second = await g.commit({ 'a.txt': 'two', 'c.txt': 'sea' });
    const r = await source.fetch();
    const dir2 = await source.checkout(r.revision);
    expect(path.basename(dir2)).toBe(second);

    expect(await readFile(path.join(dir, 'a.txt'), 'utf8')).toBe('one');
    expect(await readFile(path.join(dir, 'dir/b.txt'), 'utf8')).toBe('bee');
    expect(existsSync(path.join(dir, 'c.txt'))).toBe(false);
    expect(existsSync(path.join(dir, '.git'))).toBe(false);
    expect(await readFile(path.join(dir2, 'a.txt'), 'utf8')).toBe('two');
    expect(existsSync(path.join(dir2, 'dir/b.txt'))).toBe(false);
    expect(await source.checkout(first)).toBe(dir);
    expect(await source.checkout(first.slice(0, 10))).toBe(dir);
  });

  it('shares one checkout between concurrent callers', async () => {
    const g = await gitdir();
    const rev = await g.commit({ 'a.txt': 'one' });
    const source = g.source();
    await source.fetch();
    const dirs = await Promise.all([source.checkout(rev), source.checkout(rev), source.checkout(rev)]);
    expect(new Set(dirs).size).toBe(1);
    expect((await readdir(path.dirname(dirs[0]))).filter((e) => e.startsWith('.'))).toEqual([]);
  });

  it('keeps the most recent checkouts and the pinned ones', async () => {
    const g = await gitdir();
    const source = g.source({ keepCheckouts: 2 });
    const revs: string[] = [];
    for (let i = 0; i < 4; i++) {
      revs.push(await g.commit({ 'a.txt': String(i) }));
      await source.fetch();
    }
    const release = source.pin(revs[0]);
    for (const rev of revs) await source.checkout(rev);
    const kept = async () => (await readdir(path.join(g.stateDir, 'checkouts', path.basename(path.dirname(await source.checkout(revs[3])))))).sort();
    expect(await kept()).toEqual([revs[0], revs[2], revs[3]].sort());
    release();
    await source.checkout(revs[1]);
    expect(await kept()).toEqual([revs[1], revs[3]].sort());
  });

  it('explains a revision that was never fetched', async () => {
    const g = await gitdir();
    await g.commit({ 'a.txt': 'one' });
    const source = g.source();
    await source.fetch();
    const err = await source.checkout('0'.repeat(40)).catch((e) => e);
    expect(err).toBeInstanceOf(GitError);
    expect(err.message).toContain('Call fetch() first.');
  });
});

describe('GitSource.commitInfo', () => {
  it('describes a fetched commit', async () => {
    const g = await gitdir();
    const rev = await g.commit({ 'a.txt': 'one' }, 'subject line\n\nbody');
    const source = g.source();
    await source.fetch();
    expect(await source.commitInfo(rev)).toMatchObject({ revision: rev, message: 'subject line', author: 't <t@t>' });
  });
});
