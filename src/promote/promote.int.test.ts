import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { git, runCli, tempDir } from '../../test/helpers.js';
import { opsRepo } from '../../test/ops-fixture.js';

describe('keelson promote (real git)', () => {
  const tmp = tempDir('keelson-promote-');
  afterAll(() => tmp.cleanup());

  it('writes one commit that sets the target versions to the source, keeping comments', () => {
    const dir = join(tmp.dir, 'a');
    const base = opsRepo(dir);
    const before = readFileSync(join(dir, 'envs/prod.yaml'), 'utf8');
    const r = runCli(['promote', 'web', 'worker', '--from', 'staging', '--to', 'prod', '--yes', '--repo', dir]);
    expect(r.code, r.stderr).toBe(0);
    expect(git(dir, 'rev-list', '--count', `${base}..HEAD`)).toBe('1');
    expect(git(dir, 'log', '-1', '--format=%s')).toBe('Promote web 1.1.0 from staging to prod');
    expect(git(dir, 'log', '-1', '--format=%b')).toContain('web: 1.0.0 -> 1.1.0');
    expect(git(dir, 'show', '--name-only', '--format=', 'HEAD')).toBe('envs/prod.yaml');
    const after = readFileSync(join(dir, 'envs/prod.yaml'), 'utf8');
    // Only the new line: comments and spacing of the rest stay byte for byte.
    expect(after).toBe(before.replace('      replicas: 2\n', '      replicas: 2\n      version: "1.1.0"\n'));
    expect(git(dir, 'status', '--porcelain')).toBe('');
    // The repository still renders; the promoted versions are what prod now runs.
    expect(runCli(['diff-envs', 'staging', 'prod', '--repo', dir]).stdout).not.toMatch(/web\s+version/);
    expect(before).not.toBe(after);

    // Rolling back is promoting the old state back: a revert commit, inspected with git.
    git(dir, 'revert', '--no-edit', 'HEAD');
    expect(readFileSync(join(dir, 'envs/prod.yaml'), 'utf8')).toBe(before);
  });

  it('--branch writes the commit to a new branch and leaves the checkout alone', () => {
    const dir = join(tmp.dir, 'b');
    const base = opsRepo(dir);
    const r = runCli(['promote', '--all', '--from', 'staging', '--to', 'prod', '--yes', '--branch', 'promote/web-1.1.0', '--repo', dir]);
    expect(r.code, r.stderr).toBe(0);
    expect(git(dir, 'rev-parse', 'HEAD')).toBe(base);
    expect(git(dir, 'rev-parse', '--abbrev-ref', 'HEAD')).toBe('main');
    expect(git(dir, 'status', '--porcelain')).toBe('');
    expect(git(dir, 'rev-parse', 'promote/web-1.1.0^')).toBe(base);
    expect(git(dir, 'show', 'promote/web-1.1.0:envs/prod.yaml')).toContain('version: "1.1.0"');
    expect(git(dir, 'diff', '--name-only', base, 'promote/web-1.1.0')).toBe('envs/prod.yaml');
    // The branch exists now: a second promotion to it is refused rather than moving it.
    const again = runCli(['promote', '--all', '--from', 'staging', '--to', 'prod', '--yes', '--branch', 'promote/web-1.1.0', '--repo', dir]);
    expect(again.code).toBe(1);
  });

  it('shows the diff and asks; without a terminal it needs --yes', () => {
    const dir = join(tmp.dir, 'c');
    const base = opsRepo(dir);
    const r = runCli(['promote', 'web', '--from', 'staging', '--to', 'prod', '--repo', dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('~ web: 1.0.0 → 1.1.0');
    expect(r.stderr).toContain('pass --yes');
    expect(git(dir, 'rev-parse', 'HEAD')).toBe(base);
    expect(runCli(['promote', 'nope', '--from', 'staging', '--to', 'prod', '--yes', '--repo', dir]).stderr).toContain('does not run app "nope"');
  });
});
