import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Process start time in clock ticks since boot (field 22 of /proc/PID/stat), or undefined if gone or a zombie. */
export function processStartTime(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses; fields after it start after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (rest[0] === 'Z' || rest[0] === 'X') return undefined;
  return rest[19];
}

/** True when `pid` is alive and is the very process that started at `startTime` (never a reused pid). */
export function isSameProcess(pid: number, startTime: string): boolean {
  return pid > 0 && processStartTime(pid) === startTime;
}

export interface SpawnSpec {
  command: string[];
  cwd: string;
  env: Record<string, string>;
  /** File descriptor that receives stdout and stderr. */
  logFd: number;
}

/**
 * Starts a detached process: its own session and process group, so that stopping or restarting Keelson
 * does not touch it. Resolves once the process exists (or rejects when the command cannot start).
 */
export function spawnDetached(spec: SpawnSpec): Promise<{ child: ChildProcess; pid: number; startTime: string }> {
  return new Promise((resolve, reject) => {
    const [file, ...args] = spec.command;
    const child = spawn(file, args, {
      cwd: spec.cwd,
      env: spec.env,
      detached: true,
      stdio: ['ignore', spec.logFd, spec.logFd],
    });
    child.unref();
    child.once('error', (err) => reject(new Error(`cannot start ${JSON.stringify(file)}: ${err.message}`)));
    child.once('spawn', () => {
      const pid = child.pid!;
      resolve({ child, pid, startTime: processStartTime(pid) ?? '0' });
    });
  });
}

/** Signals a whole process group; quietly ignores a group that is already gone. */
export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

/** The environment a supervised app starts with: a minimal base (never Keelson's own secrets) plus its variables. */
export function baseEnv(): Record<string, string> {
  const keep = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR', 'USER', 'NODE_EXTRA_CA_CERTS'];
  const env: Record<string, string> = {};
  for (const k of keep) if (process.env[k] !== undefined) env[k] = process.env[k]!;
  env.PATH ??= '/usr/local/bin:/usr/bin:/bin';
  return env;
}
