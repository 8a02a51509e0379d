import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { git, GitError, gitTest, redact } from './git.js';

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'keelson-git-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('redact', () => {
  it('hides userinfo in URLs and leaves the rest', () => {
    expect(redact("fatal: unable to access 'https://user:s3cret@example.com/o/r.git/'")).toBe(
      "fatal: unable to access 'https://***@example.com/o/r.git/'",
    );
    expect(redact('https://ghp_token@github.com/o/r')).toBe('https://***@github.com/o/r');
    expect(redact('git@github.com:o/r.git')).toBe('git@github.com:o/r.git');
  });
});

describe('git', () => {
  it('returns stdout without the trailing newline', async () => {
    const dir = await tempDir();
    await git(['init', '-q', '-b', 'main'], { cwd: dir });
    expect(await git(['symbolic-ref', 'HEAD'], { cwd: dir })).toBe('refs/heads/main');
  });

  it('ignores GIT_DIR inherited from the environment', async () => {
    const dir = await tempDir();
    await git(['init', '-q', '-b', 'main'], { cwd: dir });
    const saved = process.env.GIT_DIR;
    process.env.GIT_DIR = path.join(dir, 'nowhere');
    onTestFinished(() => {
      if (saved === undefined) delete process.env.GIT_DIR;
      else process.env.GIT_DIR = saved;
    });
    expect(await git(['rev-parse', '--is-inside-work-tree'], { cwd: dir })).toBe('true');
  });

  it('fails with the command, stderr and a next step, credentials redacted', async () => {
    const dir = await tempDir();
    const err = await git(['ls-remote', 'http://alice:s3cret@127.0.0.1:1/ops.git'], { cwd: dir }).catch((e) => e);
    expect(err).toBeInstanceOf(GitError);
    expect(err.message).toContain('`git ls-remote http://***@127.0.0.1:1/ops.git` failed (exit 128)');
    expect(err.message).toContain('Is the remote reachable');
    expect(err.message).not.toContain('s3cret');
    expect(err.stderr).not.toContain('s3cret');
    expect(err.exitCode).toBe(128);
  });

  it('uses the caller’s hint', async () => {
    const dir = await tempDir();
    const err = await git(['rev-parse', '--verify', 'nope'], { cwd: dir, hint: 'Run it in a repository.' }).catch((e) => e);
    expect(err.message).toMatch(/Run it in a repository\.$/);
  });

  it('kills a command that outlives its timeout', async () => {
    // A server that accepts connections and never answers.
    const sockets: Socket[] = [];
    const server = createServer((s) => sockets.push(s));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => {
      for (const s of sockets) s.destroy();
      server.close();
    });
    const port = (server.address() as { port: number }).port;
    const dir = await tempDir();
    const err = await git(['ls-remote', `http://127.0.0.1:${port}/ops.git`], { cwd: dir, timeoutMs: 300 }).catch((e) => e);
    expect(err).toBeInstanceOf(GitError);
    expect(err.timedOut).toBe(true);
    expect(err.message).toContain('timed out after 300 ms');
  });

  it('answers yes/no questions by exit status', async () => {
    const dir = await tempDir();
    await git(['init', '-q', '-b', 'main'], { cwd: dir });
    expect(await gitTest(['diff', '--quiet'], { cwd: dir })).toBe(true);
    await expect(gitTest(['rev-parse', '--verify', 'nope'], { cwd: dir })).rejects.toThrow(GitError);
  });
});
