/** `keelson update`: commits the newest versions allowed by the Apps' updatePolicy to environments with autoUpdate. */
import { ExitError } from '../core/errors.js';
import { formatIssue } from '../core/types.js';
import { planUpdates, writeUpdate } from '../automation/update.js';
import { WorkingCopy } from '../opsrepo/working-copy.js';
import { parse } from './args.js';

export async function update(argv: string[]): Promise<void> {
  const { values } = parse(argv, { repo: { type: 'string' }, path: { type: 'string' }, 'dry-run': { type: 'boolean' }, branch: { type: 'string' }, push: { type: 'boolean' }, json: { type: 'boolean' } });
  const wc = await WorkingCopy.open(values.repo, values.path);
  const { desired, issues } = await wc.render();
  if (issues.length) throw new ExitError(1, `the ops repository has problems (keelson validate):\n${issues.map(formatIssue).join('\n')}`);
  const updates = await planUpdates(wc, desired);
  const commits: { app: string; commit: string | null }[] = [];
  for (const u of updates) {
    for (const c of u.changes) console.error(`~ ${u.app} in ${c.env}: ${c.from} → ${c.to} (${u.semver})`);
    // Several apps on one --branch would collide; each app gets its own branch then.
    const branch = values.branch && updates.length > 1 ? `${values.branch}-${u.app}` : values.branch;
    commits.push({ app: u.app, commit: values['dry-run'] ? null : await writeUpdate(wc, u, { branch, push: values.push }) });
  }
  if (values.json) console.log(JSON.stringify({ updates, commits }, null, 2));
  else if (updates.length === 0) console.log('everything is up to date');
  else if (!values['dry-run']) console.log(commits.map((c) => `committed ${c.commit!.slice(0, 7)}: ${c.app}`).join('\n'));
}
