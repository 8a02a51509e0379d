import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';

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
  /** Run as this user and group (supplementary groups are cleared); absent: as the engine. */
  uid?: number;
  gid?: number;
  /**
   * Confinement applied before the app's code runs: the process waits in a tiny shell (`sh -c`, argv passed as
   * positional arguments, never interpolated) until the engine has put its pid into these cgroups, sets its
   * RLIMIT_NOFILE (`ulimit -n`: works without CAP_SYS_RESOURCE, but cannot go above the engine's own hard limit), then
   * execs the command. A wrapper left alone (the engine died meanwhile) exits 125 instead.
   */
  confine?: { cgroupProcs: string[]; openFiles?: number };
}

/**
 * Waits for "go" on fd 3 (the engine has put it into its cgroups), closes it, sets RLIMIT_NOFILE (soft and hard) when
 * $1 is not empty, execs the rest. Constant text: nothing from the ops repository goes in here.
 */
const confineScript = 'IFS= read -r go <&3 && [ "$go" = go ] || exit 125; exec 3<&-; if [ -n "$1" ]; then ulimit -n "$1" || exit 125; fi; shift; exec "$@"';

/**
 * Starts a detached process: its own session and process group, so that stopping or restarting Keelson
 * does not touch it. Resolves once the process exists (or rejects when the command cannot start).
 */
export function spawnDetached(spec: SpawnSpec): Promise<{ child: ChildProcess; pid: number; startTime: string }> {
  const confine = spec.confine && (spec.confine.cgroupProcs.length > 0 || spec.confine.openFiles !== undefined) ? spec.confine : undefined;
  return new Promise((resolve, reject) => {
    const nofile = confine?.openFiles !== undefined ? String(confine.openFiles) : '';
    const [file, ...args] = confine ? ['/bin/sh', '-c', confineScript, 'keelson-replica', nofile, ...spec.command] : spec.command;
    const child = spawn(file, args, {
      cwd: spec.cwd,
      env: spec.env,
      detached: true,
      stdio: confine ? ['ignore', spec.logFd, spec.logFd, 'pipe'] : ['ignore', spec.logFd, spec.logFd],
      ...(spec.uid !== undefined ? { uid: spec.uid } : {}),
      ...(spec.gid !== undefined ? { gid: spec.gid } : {}),
    });
    child.unref();
    child.once('error', (err) => reject(new Error(`cannot start ${JSON.stringify(spec.command[0])}: ${err.message}`)));
    child.once('spawn', () => {
      const pid = child.pid!;
      const started = { child, pid, startTime: processStartTime(pid) ?? '0' };
      if (!confine) return resolve(started);
      const gate = child.stdio[3] as import('node:stream').Duplex;
      // A wrapper killed meanwhile closes its end: that is its exit to report, not an engine error.
      gate.on('error', () => undefined);
      applyConfinement(pid, confine).then(
        () => {
          gate.end('go\n', () => gate.destroy());
          resolve(started);
        },
        (err: Error) => {
          // Never let it run unconfined: it has not run the app's code yet.
          gate.destroy();
          signalGroup(pid, 'SIGKILL');
          reject(new Error(`cannot confine ${JSON.stringify(spec.command[0])}: ${err.message}`));
        },
      );
    });
  });
}

async function applyConfinement(pid: number, c: NonNullable<SpawnSpec['confine']>): Promise<void> {
  for (const procs of c.cgroupProcs) await writeFile(procs, String(pid));
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
