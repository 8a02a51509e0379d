/**
 * `keelson rollback --env E --app A [--to REVISION] [--repo DIR] [--yes] [--push] [--reason TEXT]`: a GitOps
 * rollback. Writes a commit to the ops repository's working copy that restores the app's declaration (its App
 * document and the Environment's entry) as of REVISION — by default the last revision at which the running engine
 * saw it healthy — so git and the live system agree. Shows the diff and asks first unless --yes.
 */
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { ExitError, errorMessage } from '../core/errors.js';
import { git, type RestorePlan } from '../rollback/declaration.js';
import { chooseRestore, RollbackRefused, rollbackMessage, type RestoreChoice } from '../rollback/restore.js';
import type { AppRevisions } from '../rollback/revisions.js';
import { parse } from './args.js';

export async function rollback(argv: string[]): Promise<void> {
  const { values } = parse(argv, {
    env: { type: 'string' },
    app: { type: 'string' },
    to: { type: 'string' },
    repo: { type: 'string' },
    yes: { type: 'boolean', short: 'y' },
    push: { type: 'boolean' },
    reason: { type: 'string' },
    server: { type: 'string' },
  });
  if (!values.env || !values.app) throw new ExitError(2, 'keelson rollback needs --env and --app');
  const env = values.env;
  const app = values.app;
  const repo = resolve(values.repo ?? '.');
  const top = await git(repo, ['rev-parse', '--show-toplevel']).catch(() => {
    throw new ExitError(2, `${repo} is not a git working copy; pass the ops repository with --repo DIR`);
  });
  const root = top.trim();
  const who = await identity(root);

  let choice: RestoreChoice;
  try {
    choice = await chooseRestore({
      repo: root,
      env,
      app,
      to: values.to,
      reason: values.reason,
      history: () => revisionsOf((values.server ?? process.env.KEELSON_SERVER ?? 'http://127.0.0.1:7070').replace(/\/$/, ''), env, app),
      place: values.to ? root : 'the working copy',
      fetchHint: 'is the working copy fetched? (git fetch)',
      passTo: 'pass --to REVISION',
    });
  } catch (err) {
    if (err instanceof RollbackRefused) throw new ExitError(err.badRequest ? 2 : 1, err.message);
    throw err;
  }
  const { revision, plan } = choice;
  if (plan.changes.size === 0) {
    console.log(`nothing to roll back: the working copy already declares ${app} in ${env} as at ${revision.slice(0, 7)}`);
    return;
  }
  const dirty = (await git(root, ['status', '--porcelain', '--', ...plan.changes.keys()])).trim();
  if (dirty) throw new ExitError(1, `uncommitted changes in files the rollback edits; commit or discard them first:\n${dirty}`);

  console.log(await unifiedDiff(plan));
  const versions = plan.versionNow !== plan.versionThen ? ` (${plan.versionNow ?? '?'} → ${plan.versionThen ?? '?'})` : '';
  const { subject, body } = rollbackMessage({ env, app, choice, who });
  if (!values.yes) {
    if (!process.stdin.isTTY) throw new ExitError(2, 'refusing to write without confirmation: run in a terminal, or pass --yes');
    const rl = createInterface({ input: process.stdin, output: process.stdout });
    const answer = await rl.question(`Commit this rollback of ${app} in ${env} to ${revision.slice(0, 7)}${versions}? [y/N] `);
    rl.close();
    if (!/^y(es)?$/i.test(answer.trim())) throw new ExitError(1, 'rollback cancelled; nothing was written');
  }

  for (const [file, c] of plan.changes) {
    await mkdir(dirname(join(root, file)), { recursive: true });
    await writeFile(join(root, file), c.after);
  }
  await git(root, ['add', '--', ...plan.changes.keys()]);
  await git(root, ['commit', '-q', '-m', subject, '-m', body, '--', ...plan.changes.keys()]);
  const head = (await git(root, ['rev-parse', 'HEAD'])).trim();
  console.log(`committed ${head.slice(0, 7)}: ${subject}`);
  if (values.push) {
    const remotes = (await git(root, ['remote'])).trim().split('\n').filter(Boolean);
    if (remotes.length === 0) {
      console.log('not pushed: the repository has no remote');
      return;
    }
    const upstream = await git(root, ['rev-parse', '--abbrev-ref', '--symbolic-full-name', '@{u}']).catch(() => '');
    try {
      await git(root, upstream.trim() ? ['push', '-q'] : ['push', '-q', remotes.includes('origin') ? 'origin' : remotes[0], 'HEAD']);
    } catch (err) {
      throw new ExitError(1, `the rollback is committed (${head.slice(0, 7)}) but the push failed: ${errorMessage(err).split('\n').slice(-3).join(' ')}`);
    }
    console.log('pushed');
  } else {
    console.log('push it (or run with --push) so the engine deploys it');
  }
}

async function identity(root: string): Promise<string> {
  const get = (k: string) => git(root, ['config', k]).then((s) => s.trim()).catch(() => '');
  const [name, email] = await Promise.all([get('user.name'), get('user.email')]);
  if (!name || !email) throw new ExitError(2, 'git user.name and user.email are not set; the rollback commit must name who made it (git config user.name …)');
  return `${name} <${email}>`;
}

async function revisionsOf(server: string, env: string, app: string): Promise<AppRevisions> {
  let res: Response;
  try {
    res = await fetch(`${server}/api/v1/environments/${encodeURIComponent(env)}/apps/${encodeURIComponent(app)}/revisions`);
  } catch {
    throw new ExitError(1, `cannot reach Keelson at ${server} to find the last healthy revision; start it, set --server, or pass --to REVISION`);
  }
  if (!res.ok) throw new ExitError(1, `asking ${server} for revisions failed: ${res.status} ${await res.text()}`);
  return (await res.json()) as AppRevisions;
}

async function unifiedDiff(plan: RestorePlan): Promise<string> {
  const tmp = await mkdtemp(join(tmpdir(), 'keelson-rollback-'));
  try {
    for (const [file, c] of plan.changes) {
      for (const [side, text] of [['a', c.before], ['b', c.after]] as const) {
        await mkdir(dirname(join(tmp, side, file)), { recursive: true });
        await writeFile(join(tmp, side, file), text);
      }
    }
    // Exit code 1 means "differences found".
    return await git(tmp, ['diff', '--no-index', '--no-color', '--src-prefix=', '--dst-prefix=', 'a', 'b']).catch((err: { stdout?: string }) => err.stdout ?? '');
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
