/** HTTP and exec measurements of a new version, shared by targets: each returns a Measurement, never throws. */
import { spawn } from 'node:child_process';
import type { ExecCheck, HttpCheck } from '../core/rollout.js';
import type { Measurement } from './analysis.js';

/** Requests `url`; an expected status passes, another fails, no answer in time is an error. */
export async function httpMeasurement(check: HttpCheck, url: string, timeoutMs: number, signal?: AbortSignal): Promise<Measurement> {
  const timeout = AbortSignal.timeout(timeoutMs);
  try {
    const res = await fetch(url, { method: check.method, signal: signal ? AbortSignal.any([signal, timeout]) : timeout, redirect: 'manual' });
    await res.body?.cancel().catch(() => undefined);
    const ok = check.expectStatus.includes(res.status);
    return { phase: ok ? 'Successful' : 'Failed', message: `${check.method} ${redact(url)} answered ${res.status}${ok ? '' : `, expected ${check.expectStatus.join(' or ')}`}` };
  } catch (err) {
    const why = timeout.aborted ? `no answer within ${timeoutMs} ms` : (err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message;
    return { phase: 'Error', message: `${check.method} ${redact(url)} failed: ${why}` };
  }
}

/** Runs argv in `cwd`: exit 0 passes, exit 1 fails, any other end (signal, timeout, spawn error) is an error. */
export function execMeasurement(check: ExecCheck, opts: { cwd: string; env: Record<string, string>; timeoutMs: number; signal?: AbortSignal; uid?: number; gid?: number }): Promise<Measurement> {
  return new Promise((resolve) => {
    const [cmd, ...args] = check.command;
    let out = '';
    // As the app's user when given (local target, `user:`).
    const ids = opts.uid !== undefined ? { uid: opts.uid, gid: opts.gid } : {};
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'], timeout: opts.timeoutMs, signal: opts.signal, ...ids });
    const keep = (c: Buffer) => (out = (out + c.toString('utf8')).slice(-2000));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.once('error', (err) => resolve({ phase: 'Error', message: `${check.command[0]} could not run: ${err.message}` }));
    child.once('close', (code, sig) => {
      const tail = out.trim().split('\n').slice(-3).join(' | ');
      const said = tail ? `: ${tail}` : '';
      if (code === 0) resolve({ phase: 'Successful', message: `${check.command[0]} exited 0${said}` });
      else if (code === 1) resolve({ phase: 'Failed', message: `${check.command[0]} exited 1${said}` });
      else resolve({ phase: 'Error', message: `${check.command[0]} ${sig ? `was killed by ${sig} (timeout ${opts.timeoutMs} ms?)` : `exited ${code}`}${said}` });
    });
  });
}

/** URLs may carry credentials; never show them. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.username || u.password) {
      u.username = '';
      u.password = '';
    }
    u.search = u.search ? '?…' : '';
    return u.toString();
  } catch {
    return '(invalid url)';
  }
}
