import { redactCredentials } from './redact.js';
import { spawn } from 'node:child_process';

export interface GitOptions {
  cwd: string;
  /** Kill the command (and its children: ssh, remote helpers) after this long. Default 60 s. */
  timeoutMs?: number;
  /** Extra environment on top of the hardened process environment. */
  env?: Record<string, string>;
  /** What to do next, appended to the error message (a default is derived from stderr). */
  hint?: string;
}

export const defaultGitTimeoutMs = 60_000;

/** A failed git command; the message names the command and says what to do next, with credentials redacted. */
export class GitError extends Error {
  constructor(
    message: string,
    readonly command: string,
    readonly stderr: string,
    readonly exitCode: number | null,
    readonly timedOut: boolean,
  ) {
    super(message);
    this.name = 'GitError';
  }
}

// Never run repository hooks; allow file:// remotes (local ops repos, tests).
const hardening = ['-c', 'core.hooksPath=/dev/null', '-c', 'protocol.file.allow=always'];

// Inherited variables that would point git at some other repository (e.g. when run from a git hook).
const repoEnv = [
  'GIT_DIR',
  'GIT_WORK_TREE',
  'GIT_INDEX_FILE',
  'GIT_OBJECT_DIRECTORY',
  'GIT_ALTERNATE_OBJECT_DIRECTORIES',
  'GIT_COMMON_DIR',
  'GIT_NAMESPACE',
  'GIT_PREFIX',
];

function gitEnv(extra: Record<string, string> | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of repoEnv) delete env[k];
  return {
    ...env,
    GIT_TERMINAL_PROMPT: '0',
    GIT_ASKPASS: '',
    SSH_ASKPASS: '',
    SSH_ASKPASS_REQUIRE: 'never',
    LC_ALL: 'C',
    ...extra,
  };
}

/** Credentials out of a text (URL userinfo → `***`); see `redact.ts`. */
export const redact = redactCredentials;

function hintFor(stderr: string): string | undefined {
  const s = stderr.toLowerCase();
  const ref = /couldn't find remote ref (\S+)/i.exec(stderr)?.[1];
  if (ref) return `Does ref \`${ref.replace(/^refs\/(heads|tags)\//, '')}\` exist on the remote?`;
  if (/authentication failed|could not read username|permission denied|returned error: 40[13]/.test(s))
    return 'Check the credentials (a token in the URL, a credential helper or an SSH key).';
  if (s.includes('does not appear to be a git repository') || s.includes('not found') || s.includes('not a git repository'))
    return 'Is the repository URL or path correct?';
  if (/could not resolve|connection refused|couldn't connect|failed to connect|timed out|unreachable|no route to host|could not read from remote/.test(s))
    return 'Is the remote reachable from this machine?';
  return undefined;
}

/**
 * Runs `git <args>` without a shell and returns its stdout (trailing newline removed).
 * Prompts are disabled; the process gets its own process group so a timeout kills its helpers too.
 */
export function git(args: string[], opts: GitOptions): Promise<string> {
  const timeoutMs = opts.timeoutMs ?? defaultGitTimeoutMs;
  const command = redact(`git ${args.join(' ')}`);
  return new Promise((resolve, reject) => {
    // spawn, not execFile: only spawn can start a process group, which lets a timeout kill ssh and remote helpers too.
    const child = spawn('git', [...hardening, ...args], {
      cwd: opts.cwd,
      env: gitEnv(opts.env),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => stdout.push(b));
    child.stderr.on('data', (b: Buffer) => stderr.push(b));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid, 'SIGTERM');
      setTimeout(() => killGroup(child.pid, 'SIGKILL'), 2_000).unref();
    }, timeoutMs);
    const fail = (what: string, code: number | null, detail: string) => {
      detail = redact(detail.trim());
      const hint = opts.hint ?? hintFor(detail);
      const message = `\`${command}\` ${what}${detail ? `: ${detail}` : ''}${hint ? `\n${hint}` : ''}`;
      reject(new GitError(message, command, detail, code, timedOut));
    };
    child.on('error', (err) => {
      clearTimeout(timer);
      fail('could not start', null, `${err.message}. Is git installed and on PATH?`);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve(Buffer.concat(stdout).toString('utf8').replace(/\n$/, ''));
      const what = timedOut ? `timed out after ${timeoutMs} ms` : `failed (${code === null ? signal : `exit ${code}`})`;
      fail(what, code, Buffer.concat(stderr).toString('utf8'));
    });
  });
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/** Runs a command whose exit status is the answer (`merge-base --is-ancestor`): exit 0 → true, 1 → false. */
export async function gitTest(args: string[], opts: GitOptions): Promise<boolean> {
  try {
    await git(args, opts);
    return true;
  } catch (err) {
    if (err instanceof GitError && err.exitCode === 1) return false;
    throw err;
  }
}
