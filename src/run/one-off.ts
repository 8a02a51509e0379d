/**
 * One-off admin processes (12-factor): a command run in an app's current release directory with exactly the app's
 * environment, its output streamed, its exit code returned. The process gets its own process group so a cancelled
 * run (client gone, timeout) is killed with all its children.
 */
import { spawn } from 'node:child_process';
import { redact } from '../source/git.js';


/** The longest delay setTimeout honours (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;
export interface RunSink {
  stdout(chunk: Buffer): void;
  stderr(chunk: Buffer): void;
}

export interface RunResult {
  /** Exit code, or null when ended by a signal. */
  code: number | null;
  signal: string | null;
  durationMs: number;
}

export interface RunSpec {
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  sink: RunSink;
  signal?: AbortSignal;
  /** Killed (SIGTERM, then SIGKILL 5 s later) after this long. Default: no limit. */
  timeoutMs?: number;
  /** Run as this user and group (the app's `user:`; supplementary groups cleared). */
  uid?: number;
  gid?: number;
}

export function runProcess(spec: RunSpec): Promise<RunResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const [file, ...args] = spec.argv;
    const ids = spec.uid !== undefined ? { uid: spec.uid, gid: spec.gid } : {};
    const child = spawn(file, args, { cwd: spec.cwd, env: spec.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'], ...ids });
    const kill = () => {
      if (child.pid === undefined || child.exitCode !== null) return;
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        /* gone */
      }
      setTimeout(() => {
        try {
          if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }, 5000).unref();
    };
    // Node fires a timer above 2^31-1 ms after 1 ms (TimeoutOverflowWarning): a long timeout would kill at once.
    const timer = spec.timeoutMs ? setTimeout(kill, Math.min(spec.timeoutMs, MAX_TIMER_MS)) : undefined;
    spec.signal?.addEventListener('abort', kill, { once: true });
    child.stdout.on('data', (b: Buffer) => spec.sink.stdout(b));
    child.stderr.on('data', (b: Buffer) => spec.sink.stderr(b));
    child.once('error', (err) => {
      if (timer) clearTimeout(timer);
      reject(new Error(`cannot start ${JSON.stringify(file)} in ${spec.cwd}: ${err.message}`));
    });
    child.once('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      spec.signal?.removeEventListener('abort', kill);
      resolve({ code, signal, durationMs: Date.now() - started });
    });
  });
}

/** argv as recorded in history and events: credentials in URLs are masked, long commands shortened. */
export function describeArgv(argv: string[]): string {
  const text = redact(argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' '));
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}

/** NDJSON frames of the run API: output chunks, then exactly one `exit` (or `error`) frame. */
export type RunFrame =
  | { stream: 'stdout' | 'stderr'; data: string }
  | { exit: { code: number | null; signal: string | null; durationMs: number } }
  | { error: string };
