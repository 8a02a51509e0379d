/** `keelson release`: reads an app repository's commits since its last vX.Y.Z tag, writes CHANGELOG.md, tags. */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { git } from '../source/git.js';
import { compareVersions, parseVersion, planRelease, prependChangelog, type RawCommit, type ReleasePlan } from './conventional.js';

/** The highest vX.Y.Z tag reachable from HEAD, or null. */
export async function lastReleaseTag(cwd: string): Promise<string | null> {
  const tags = (await git(['tag', '--merged', 'HEAD', '--list', 'v*'], { cwd })).split('\n').filter(Boolean);
  let best: { tag: string; v: NonNullable<ReturnType<typeof parseVersion>> } | null = null;
  for (const tag of tags) {
    const v = parseVersion(tag);
    if (v && (!best || compareVersions(v, best.v) > 0)) best = { tag, v };
  }
  return best?.tag ?? null;
}

export async function commitsSince(cwd: string, tag: string | null): Promise<RawCommit[]> {
  const range = tag ? [`${tag}..HEAD`] : ['HEAD'];
  const out = await git(['log', '--no-merges', '--format=%H%x1f%s%x1f%b%x1e', ...range], { cwd });
  return out
    .split('\x1e')
    .map((r) => r.replace(/^\n/, ''))
    .filter((r) => r.trim() !== '')
    .map((r) => {
      const [sha, subject, body] = r.split('\x1f');
      return { sha, subject, body: body ?? '' };
    });
}

export async function prepareRelease(cwd: string, now = new Date()): Promise<ReleasePlan> {
  const top = await git(['rev-parse', '--show-toplevel'], { cwd });
  const tag = await lastReleaseTag(top);
  return planRelease(tag, await commitsSince(top, tag), now.toISOString().slice(0, 10));
}

/** Writes CHANGELOG.md, commits it and tags the commit `v<next>` (annotated). Returns the tag. */
export async function publishRelease(cwd: string, plan: ReleasePlan): Promise<string> {
  if (!plan.next) throw new Error('no release to publish');
  const top = await git(['rev-parse', '--show-toplevel'], { cwd });
  const tag = `v${plan.next}`;
  const exists = await git(['tag', '--list', tag], { cwd: top });
  if (exists) throw new Error(`tag ${tag} already exists`);
  const path = join(top, 'CHANGELOG.md');
  const existing = await readFile(path, 'utf8').catch(() => null);
  await writeFile(path, prependChangelog(existing, plan.changelog));
  const email = await git(['config', 'user.email'], { cwd: top }).catch(() => '');
  const env: Record<string, string> = email || process.env.GIT_AUTHOR_EMAIL ? {} : { GIT_AUTHOR_NAME: 'Keelson', GIT_AUTHOR_EMAIL: 'keelson@localhost', GIT_COMMITTER_NAME: 'Keelson', GIT_COMMITTER_EMAIL: 'keelson@localhost' };
  await git(['add', '--', 'CHANGELOG.md'], { cwd: top });
  await git(['commit', '-q', '--no-verify', '-m', `chore(release): ${tag}`, '--', 'CHANGELOG.md'], { cwd: top, env });
  await git(['tag', '-a', tag, '-m', `${tag}\n\n${plan.changelog}`], { cwd: top, env });
  return tag;
}
