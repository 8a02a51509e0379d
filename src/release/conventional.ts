/**
 * Conventional Commits → next semantic version and a changelog section. Pure.
 * feat → minor, fix/perf → patch, `!` or a BREAKING CHANGE footer → major (minor while 0.x).
 */

export type Bump = 'major' | 'minor' | 'patch' | 'none';

export interface RawCommit {
  sha: string;
  subject: string;
  body: string;
}

export interface ParsedCommit {
  sha: string;
  type: string;
  scope?: string;
  description: string;
  breaking: boolean;
  /** Text of BREAKING CHANGE footers (or the description when only `!` marks it). */
  breakingNotes: string[];
}

export interface Version {
  major: number;
  minor: number;
  patch: number;
}

const header = /^(?<type>[a-zA-Z]+)(?:\((?<scope>[^()\r\n]+)\))?(?<bang>!)?: (?<description>\S.*)$/;
const breakingFooter = /^BREAKING[ -]CHANGE: ?([\s\S]*)$/m;
export const TAG = /^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$/;

/** The commit as Conventional Commits reads it, or null when it does not follow the convention. */
export function parseCommit(c: RawCommit): ParsedCommit | null {
  const m = header.exec(c.subject.trim());
  if (!m?.groups) return null;
  const { type, scope, bang, description } = m.groups;
  const notes: string[] = [];
  const footer = breakingFooter.exec(c.body);
  if (footer) notes.push(footer[1].split(/\n\n/)[0].trim());
  const breaking = !!bang || !!footer;
  if (breaking && notes.length === 0) notes.push(description.trim());
  return { sha: c.sha, type: type.toLowerCase(), scope, description: description.trim(), breaking, breakingNotes: notes };
}

export function bumpOf(commits: ParsedCommit[]): Bump {
  if (commits.some((c) => c.breaking)) return 'major';
  if (commits.some((c) => c.type === 'feat')) return 'minor';
  if (commits.some((c) => c.type === 'fix' || c.type === 'perf')) return 'patch';
  return 'none';
}

export function parseVersion(tag: string): Version | null {
  const m = TAG.exec(tag);
  return m ? { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]) } : null;
}

export function formatVersion(v: Version): string {
  return `${v.major}.${v.minor}.${v.patch}`;
}

export function compareVersions(a: Version, b: Version): number {
  return a.major - b.major || a.minor - b.minor || a.patch - b.patch;
}

/** The next version; while 0.x a breaking change bumps the minor version (semver's "anything may change"). */
export function nextVersion(current: Version, bump: Bump): Version {
  const effective = bump === 'major' && current.major === 0 ? 'minor' : bump;
  switch (effective) {
    case 'major':
      return { major: current.major + 1, minor: 0, patch: 0 };
    case 'minor':
      return { major: current.major, minor: current.minor + 1, patch: 0 };
    case 'patch':
      return { ...current, patch: current.patch + 1 };
    default:
      return current;
  }
}

export interface ReleasePlan {
  previous: string | null;
  next: string | null;
  bump: Bump;
  commits: ParsedCommit[];
  /** Commits that do not follow the convention: listed, not fatal. */
  nonConforming: RawCommit[];
  changelog: string;
}

/** `commits` newest first (as git log lists them). */
export function planRelease(previousTag: string | null, commits: RawCommit[], date: string): ReleasePlan {
  const parsed: ParsedCommit[] = [];
  const nonConforming: RawCommit[] = [];
  for (const c of commits) {
    const p = parseCommit(c);
    if (p) parsed.push(p);
    else nonConforming.push(c);
  }
  const bump = bumpOf(parsed);
  const current = (previousTag && parseVersion(previousTag)) || { major: 0, minor: 0, patch: 0 };
  const next = bump === 'none' ? null : formatVersion(nextVersion(current, bump));
  return { previous: previousTag, next, bump, commits: parsed, nonConforming, changelog: next ? changelogSection(next, date, parsed) : '' };
}

const sections: [string, (c: ParsedCommit) => boolean][] = [
  ['Features', (c) => c.type === 'feat'],
  ['Bug Fixes', (c) => c.type === 'fix'],
  ['Performance Improvements', (c) => c.type === 'perf'],
];

export function changelogSection(version: string, date: string, commits: ParsedCommit[]): string {
  const line = (c: ParsedCommit, text = c.description) => `- ${c.scope ? `**${c.scope}:** ` : ''}${text} (${c.sha.slice(0, 7)})`;
  const out = [`## ${version} (${date})`, ''];
  const breaking = commits.filter((c) => c.breaking);
  if (breaking.length) out.push('### ⚠ BREAKING CHANGES', '', ...breaking.flatMap((c) => c.breakingNotes.map((n) => line(c, n))), '');
  for (const [title, pick] of sections) {
    const list = commits.filter(pick);
    if (list.length) out.push(`### ${title}`, '', ...list.map((c) => line(c)), '');
  }
  return out.join('\n');
}

/** CHANGELOG.md with the new section on top (below a leading `# …` title, which is created when missing). */
export function prependChangelog(existing: string | null, section: string): string {
  const title = '# Changelog\n\n';
  if (!existing || existing.trim() === '') return `${title}${section}`;
  const m = /^# .*\n+/.exec(existing);
  if (m) return `${m[0]}${section}\n${existing.slice(m[0].length)}`;
  return `${title}${section}\n${existing}`;
}
