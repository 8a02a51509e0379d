import { resolve } from 'node:path';
import { ExitError } from '../core/errors.js';
import { formatIssue } from '../core/types.js';
import { renderRepository } from '../render/index.js';
import { parse } from './args.js';

/** `keelson validate`: checks the working tree; every problem as `file:line:col: message`. */
export async function validate(argv: string[]): Promise<void> {
  const { values } = parse(argv, { repo: { type: 'string' }, path: { type: 'string' } });
  const root = resolve(values.repo ?? '.');
  const { desired, issues } = await renderRepository({ root, path: values.path });
  for (const i of issues) console.log(formatIssue(i));
  if (issues.length) throw new ExitError(1, `${issues.length} problem${issues.length === 1 ? '' : 's'} found`);
  const apps = desired.environments.reduce((n, e) => n + e.apps.length, 0);
  console.log(`ok: ${desired.environments.length} environment(s), ${apps} app deployment(s)`);
}
