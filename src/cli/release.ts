/** `keelson release [--repo APP_REPO] [--dry-run]`: next version and changelog from Conventional Commits. */
import { resolve } from 'node:path';
import { ExitError } from '../core/errors.js';
import { prepareRelease, publishRelease } from '../release/release.js';
import { parse } from './args.js';

export async function release(argv: string[]): Promise<void> {
  const { values } = parse(argv, { repo: { type: 'string' }, 'dry-run': { type: 'boolean' }, json: { type: 'boolean' } });
  const cwd = resolve(values.repo ?? '.');
  const plan = await prepareRelease(cwd).catch((err) => {
    throw new ExitError(1, `cannot read the commits of ${cwd}: ${(err as Error).message}`);
  });
  let tag: string | null = null;
  if (plan.next && !values['dry-run']) tag = await publishRelease(cwd, plan);
  if (values.json) {
    console.log(JSON.stringify({ ...plan, tag }, null, 2));
    return;
  }
  if (plan.nonConforming.length) {
    console.error(`${plan.nonConforming.length} commit(s) do not follow Conventional Commits and were not counted:`);
    for (const c of plan.nonConforming) console.error(`  ${c.sha.slice(0, 7)} ${c.subject}`);
  }
  if (!plan.next) {
    console.log(`no release needed: no feat, fix, perf or breaking commits since ${plan.previous ?? 'the first commit'}`);
    return;
  }
  console.log(`${plan.previous ?? '(no previous release)'} → v${plan.next} (${plan.bump})\n`);
  console.log(plan.changelog);
  console.log(tag ? `tagged ${tag} and updated CHANGELOG.md` : 'dry run: nothing written');
}
