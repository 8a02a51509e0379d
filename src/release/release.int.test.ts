import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { commitAll, git, gitInit, runCli, tempDir } from '../../test/helpers.js';

describe('keelson release (real git)', () => {
  const tmp = tempDir('keelson-release-');
  afterAll(() => tmp.cleanup());

  it('computes the next version since the last tag, writes CHANGELOG.md and tags', () => {
    const dir = tmp.dir;
    gitInit(dir);
    git(dir, 'config', 'user.name', 'Rel Ease');
    git(dir, 'config', 'user.email', 'rel@example.com');
    const step = (file: string, msg: string) => {
      writeFileSync(join(dir, file), msg);
      return commitAll(dir, msg);
    };
    step('a', 'feat: first feature');
    git(dir, 'tag', 'v1.2.3');
    git(dir, 'tag', 'v1.3.0-rc.1'); // not a release tag
    step('b', 'fix(api): handle empty body');
    step('c', 'tweak things');
    step('d', 'feat: promote command');

    const dry = runCli(['release', '--repo', dir, '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain('v1.2.3 → v1.3.0 (minor)');
    expect(dry.stdout).toContain('- **api:** handle empty body');
    const json = JSON.parse(runCli(['release', '--repo', dir, '--dry-run', '--json']).stdout);
    expect(json.nonConforming.map((c: { subject: string }) => c.subject)).toEqual(['tweak things']);
    expect(json).toMatchObject({ previous: 'v1.2.3', next: '1.3.0', bump: 'minor', tag: null });
    expect(git(dir, 'tag', '--list', 'v1.3.0')).toBe('');

    const r = runCli(['release', '--repo', dir]);
    expect(r.code, r.stderr).toBe(0);
    expect(git(dir, 'describe', '--tags', '--exact-match', 'HEAD')).toBe('v1.3.0');
    expect(git(dir, 'log', '-1', '--format=%s')).toBe('chore(release): v1.3.0');
    const changelog = readFileSync(join(dir, 'CHANGELOG.md'), 'utf8');
    expect(changelog).toMatch(/^# Changelog\n\n## 1\.3\.0 \(\d{4}-\d\d-\d\d\)\n\n### Features\n\n- promote command \([0-9a-f]{7}\)\n/);

    step('e', 'feat!: remove the v0 API');
    expect(runCli(['release', '--repo', dir]).code).toBe(0);
    expect(git(dir, 'describe', '--tags', '--exact-match', 'HEAD')).toBe('v2.0.0');
    const second = readFileSync(join(dir, 'CHANGELOG.md'), 'utf8');
    expect(second.indexOf('## 2.0.0')).toBeLessThan(second.indexOf('## 1.3.0'));
    expect(runCli(['release', '--repo', dir, '--dry-run']).stdout).toContain('no release needed');
  });
});
