/**
 * Limits through systemd, for a machine that systemd runs with cgroup v2 and no subtree delegated to the engine:
 * each replica starts as `systemd-run --scope` with MemoryMax, CPUQuota and TasksMax, so systemd creates its cgroup
 * before the app's code runs. The engine (root) starts systemd-run as itself; the app's user is taken on inside, by
 * `setpriv --reuid --regid --clear-groups` (util-linux), after `ulimit -n`.
 *
 *   systemd-run --scope --quiet --unit=keelson-prod-web-web-3f2a1c -p MemoryMax=268435456 -p CPUQuota=50% -- \
 *     /bin/sh -c '<constant script>' keelson-replica 4096 setpriv --reuid=998 --regid=998 --clear-groups -- node server.js
 *
 * The unit name is derived from env, app and replica id (adoption finds it again). An OOM kill leaves the scope
 * failed with result `oom-kill`; Keelson reads that, then resets the unit.
 */
import { execFile } from 'node:child_process';
import type { AppResources } from '../../core/model.js';

/** Sets RLIMIT_NOFILE when $1 is not empty, then execs the rest. Constant text: nothing from the ops repository. */
const ulimitScript = 'if [ -n "$1" ]; then ulimit -n "$1" || exit 125; fi; shift; exec "$@"';

export function scopeUnit(env: string, app: string, replica: string): string {
  return `keelson-${env}-${app}-${replica}.scope`;
}

/** The argv that starts `command` in its own scope with the limits, as `ids` when given. */
export function scopeCommand(unit: string, r: AppResources, command: string[], ids?: { uid: number; gid: number }): string[] {
  const props: string[] = [];
  if (r.memory !== undefined) props.push('-p', `MemoryMax=${r.memory}`, '-p', 'MemorySwapMax=0');
  if (r.cpu !== undefined) props.push('-p', `CPUQuota=${r.cpu / 10}%`);
  if (r.pids !== undefined) props.push('-p', `TasksMax=${r.pids}`);
  const drop = ids ? ['setpriv', `--reuid=${ids.uid}`, `--regid=${ids.gid}`, '--clear-groups', '--'] : [];
  return ['systemd-run', '--scope', '--quiet', `--unit=${unit.replace(/\.scope$/, '')}`, ...props, '--', '/bin/sh', '-c', ulimitScript, 'keelson-replica', r.openFiles !== undefined ? String(r.openFiles) : '', ...drop, ...command];
}

/** Whether systemd runs this machine and systemd-run and setpriv are there. */
export async function systemdAvailable(): Promise<boolean> {
  const { readFile } = await import('node:fs/promises');
  const comm = (await readFile('/proc/1/comm', 'utf8').catch(() => '')).trim();
  return comm === 'systemd' && (await runs('systemd-run', ['--version'])) && (await runs('setpriv', ['--version']));
}

/** True when the scope's last run ended in an OOM kill. */
export async function scopeOomKilled(unit: string): Promise<boolean> {
  return (await output('systemctl', ['show', '--property=Result', '--value', unit])).trim() === 'oom-kill';
}

/** Forgets a failed scope so that its name can be used again. */
export async function resetScope(unit: string): Promise<void> {
  await runs('systemctl', ['reset-failed', unit]);
}

/** Stops the scope (systemd kills what is left in it) and forgets it. */
export async function stopScope(unit: string): Promise<void> {
  await runs('systemctl', ['stop', unit]);
  await resetScope(unit);
}

function runs(file: string, args: string[]): Promise<boolean> {
  return new Promise((resolve) => execFile(file, args, { timeout: 10_000 }, (err) => resolve(!err)));
}

function output(file: string, args: string[]): Promise<string> {
  return new Promise((resolve) => execFile(file, args, { timeout: 10_000 }, (_err, stdout) => resolve(stdout ?? '')));
}
