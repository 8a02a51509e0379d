import { createInterface } from 'node:readline/promises';
import { ExitError } from '../core/errors.js';

/** Asks y/N on a terminal; without one, `--yes` is required. */
export async function confirm(question: string, yes: boolean | undefined): Promise<void> {
  if (yes) return;
  if (!process.stdin.isTTY) throw new ExitError(1, 'not confirmed: stdin is not a terminal; pass --yes to proceed');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = (await rl.question(`${question} [y/N] `)).trim().toLowerCase();
    if (answer !== 'y' && answer !== 'yes') throw new ExitError(1, 'aborted');
  } finally {
    rl.close();
  }
}
