/** `keelson promote APP... --from A --to B` (or `--all`): one commit setting B's versions to A's. */
import { ExitError } from '../core/errors.js';
import { formatIssue } from '../core/types.js';
import { WorkingCopy } from '../opsrepo/working-copy.js';
import { formatPromotion, planPromotion, writePromotion } from '../promote/promote.js';
import { parse } from './args.js';
import { confirm } from './confirm.js';

export async function promote(argv: string[]): Promise<void> {
  const { values, positionals } = parse(
    argv,
    {
      from: { type: 'string' },
      to: { type: 'string' },
      all: { type: 'boolean' },
      branch: { type: 'string' },
      push: { type: 'boolean' },
      yes: { type: 'boolean', short: 'y' },
      'dry-run': { type: 'boolean' },
      repo: { type: 'string' },
      path: { type: 'string' },
      json: { type: 'boolean' },
    },
    true,
  );
  if (!values.from || !values.to || (positionals.length === 0) === !values.all) {
    throw new ExitError(2, 'usage: keelson promote APP... --from ENV --to ENV [--branch NAME] [--yes] [--dry-run] [--repo DIR]   (or --all instead of APP...)');
  }
  const wc = await WorkingCopy.open(values.repo, values.path);
  const { desired, issues } = await wc.render([values.from, values.to]);
  if (issues.length) throw new ExitError(1, `the ops repository has problems (keelson validate):\n${issues.map(formatIssue).join('\n')}`);
  const env = (n: string) => desired.environments.find((e) => e.name === n)!;
  const plan = planPromotion(env(values.from), env(values.to), values.all ? 'all' : positionals);
  console.error(formatPromotion(plan));
  if (plan.changes.length === 0 || values['dry-run']) {
    if (values.json) console.log(JSON.stringify({ plan, commit: null }, null, 2));
    return;
  }
  await confirm(`Commit this promotion${values.branch ? ` to new branch ${values.branch}` : ''}?`, values.yes);
  const sha = await writePromotion(wc, plan, { branch: values.branch, push: values.push });
  if (values.json) console.log(JSON.stringify({ plan, commit: sha, branch: values.branch ?? null }, null, 2));
  else console.log(`committed ${sha.slice(0, 7)}${values.branch ? ` on branch ${values.branch} (open a review from it)` : ''}`);
}
