import { describe, expect, it } from 'vitest';
import { nextVersion, parseCommit, planRelease, prependChangelog, type RawCommit } from './conventional.js';

const c = (subject: string, body = '', sha = 'abcdef1234567890'): RawCommit => ({ sha, subject, body });

describe('conventional commits', () => {
  it('parses type, scope, breaking marks and footers', () => {
    expect(parseCommit(c('feat(api): add where endpoint'))).toMatchObject({ type: 'feat', scope: 'api', description: 'add where endpoint', breaking: false });
    expect(parseCommit(c('fix!: drop node 18'))).toMatchObject({ type: 'fix', breaking: true, breakingNotes: ['drop node 18'] });
    expect(parseCommit(c('refactor: x', 'Some text.\n\nBREAKING CHANGE: config moved to keelson.yaml'))).toMatchObject({ breaking: true, breakingNotes: ['config moved to keelson.yaml'] });
    expect(parseCommit(c('Update readme'))).toBeNull();
    expect(parseCommit(c('feat:missing space'))).toBeNull();
  });

  it('bumps feat → minor, fix/perf → patch, breaking → major (minor while 0.x)', () => {
    expect(planRelease('v1.2.3', [c('fix: a'), c('docs: b')], '2030-01-01').next).toBe('1.2.4');
    expect(planRelease('v1.2.3', [c('perf: a')], '2030-01-01').next).toBe('1.2.4');
    expect(planRelease('v1.2.3', [c('fix: a'), c('feat: b')], '2030-01-01').next).toBe('1.3.0');
    expect(planRelease('v1.2.3', [c('feat!: b')], '2030-01-01').next).toBe('2.0.0');
    expect(planRelease('v0.4.1', [c('feat!: b')], '2030-01-01').next).toBe('0.5.0');
    expect(planRelease(null, [c('feat: first')], '2030-01-01').next).toBe('0.1.0');
    expect(planRelease('v1.0.0', [c('chore: deps'), c('WIP')], '2030-01-01')).toMatchObject({ next: null, bump: 'none' });
    expect(nextVersion({ major: 0, minor: 3, patch: 2 }, 'patch')).toEqual({ major: 0, minor: 3, patch: 3 });
  });

  it('lists non-conforming commits without failing and writes a changelog section', () => {
    const plan = planRelease('v1.0.0', [c('feat(ui): dark mode', '', '1111111aaaa'), c('oops typo', '', '2222222bbbb'), c('fix: crash on start', 'BREAKING CHANGE: needs node 20', '3333333cccc')], '2030-01-02');
    expect(plan.next).toBe('2.0.0');
    expect(plan.nonConforming.map((x) => x.subject)).toEqual(['oops typo']);
    expect(plan.changelog).toBe(
      [
        '## 2.0.0 (2030-01-02)',
        '',
        '### ⚠ BREAKING CHANGES',
        '',
        '- needs node 20 (3333333)',
        '',
        '### Features',
        '',
        '- **ui:** dark mode (1111111)',
        '',
        '### Bug Fixes',
        '',
        '- crash on start (3333333)',
        '',
      ].join('\n'),
    );
    expect(prependChangelog(null, '## 1.0.0\n')).toBe('# Changelog\n\n## 1.0.0\n');
    expect(prependChangelog('# Changelog\n\n## 0.9.0\n', '## 1.0.0\n')).toBe('# Changelog\n\n## 1.0.0\n\n## 0.9.0\n');
  });
});
