/**
 * Runs the steps of one hook phase: `exec` (argv in a directory, its own process group, killed on timeout), `http`
 * (a request with an expected status) and `backup` (pg_dump). Each step is retried `retries` times; the first step
 * that still fails stops the phase. Every attempt is one `hook.completed` event with the step's output.
 */
import { redactUrl } from '../source/redact.js';
import { spawn } from 'node:child_process';
import type { HookPhase, HookStep } from '../core/delivery.js';
import { errorMessage } from '../core/errors.js';
import type { EventBus } from '../core/events.js';
import type { Logger } from '../log.js';
import { backupPostgres } from '../backup/postgres.js';

export interface HookContext {
  phase: HookPhase;
  env: string;
  app: string;
  revision: string;
  version: string;
  previousVersion?: string;
  previousRevision?: string;
  /** `Succeeded` after a rollout, `Failed` for syncFailed hooks. */
  result?: 'Succeeded' | 'Failed';
  /** Why the sync failed (syncFailed hooks). */
  message?: string;
  /** Where `exec` steps run. */
  cwd: string;
  /** The app's environment variables (exec steps get them, backup steps read the database URL from them). */
  vars: Record<string, string>;
  port?: number;
  releaseDir?: string;
}

export interface HookDeps {
  stateDir: string;
  bus: EventBus;
  log: Logger;
  /** Where `exec` steps run when not as a local process (Kubernetes: a Job); see around-apply.ts. */
  exec?: (argv: string[], ctx: HookContext, timeoutMs: number, signal?: AbortSignal) => Promise<{ ok: boolean; message: string; output: string }>;
}

export interface StepOutcome {
  step: string;
  ok: boolean;
  attempts: number;
  message: string;
}

export interface PhaseOutcome {
  ok: boolean;
  /** The failed step's message, or a summary. */
  message: string;
  steps: StepOutcome[];
}

/** Output kept per attempt, for events and messages (the end of it, where errors usually are). */
const outputLimit = 8 * 1024;

export function stepName(phase: HookPhase, step: HookStep, i: number): string {
  if (step.name) return step.name;
  const kind = 'exec' in step ? 'exec' : 'http' in step ? 'http' : 'backup';
  return `${phase}[${i}] ${kind}`;
}

/** The KEELSON_* variables a hook sees. */
export function hookVars(ctx: HookContext): Record<string, string> {
  const v: Record<string, string> = {
    KEELSON_HOOK: ctx.phase,
    KEELSON_ENV: ctx.env,
    KEELSON_APP: ctx.app,
    KEELSON_REVISION: ctx.revision,
    KEELSON_VERSION: ctx.version,
  };
  if (ctx.previousVersion !== undefined) v.KEELSON_PREVIOUS_VERSION = ctx.previousVersion;
  if (ctx.previousRevision !== undefined) v.KEELSON_PREVIOUS_REVISION = ctx.previousRevision;
  if (ctx.result !== undefined) v.KEELSON_RESULT = ctx.result;
  if (ctx.message !== undefined) v.KEELSON_MESSAGE = ctx.message.slice(0, 4096);
  if (ctx.port !== undefined) v.KEELSON_PORT = String(ctx.port);
  if (ctx.releaseDir !== undefined) v.KEELSON_RELEASE_DIR = ctx.releaseDir;
  return v;
}

export async function runPhase(steps: HookStep[] | undefined, ctx: HookContext, deps: HookDeps, signal?: AbortSignal): Promise<PhaseOutcome> {
  const outcomes: StepOutcome[] = [];
  for (const [i, step] of (steps ?? []).entries()) {
    const name = stepName(ctx.phase, step, i);
    let last: { ok: boolean; message: string; output: string } = { ok: false, message: 'not run', output: '' };
    let attempt = 0;
    for (; attempt <= step.retries; attempt++) {
      if (signal?.aborted) break;
      if (attempt > 0 && step.retryDelaySeconds > 0) await sleep(step.retryDelaySeconds * 1000, signal);
      deps.bus.publish({ type: 'hook.started', env: ctx.env, app: ctx.app, phase: ctx.phase, step: name, attempt: attempt + 1, revision: ctx.revision });
      const started = Date.now();
      last = await runStep(step, ctx, deps, signal).catch((err) => ({ ok: false, message: errorMessage(err), output: '' }));
      deps.bus.publish({
        type: 'hook.completed',
        env: ctx.env,
        app: ctx.app,
        phase: ctx.phase,
        step: name,
        attempt: attempt + 1,
        revision: ctx.revision,
        ok: last.ok,
        durationMs: Date.now() - started,
        message: last.message,
        output: last.output,
      });
      deps.log.info({ env: ctx.env, app: ctx.app, phase: ctx.phase, step: name, attempt: attempt + 1, ok: last.ok }, 'hook step completed');
      if (last.ok) break;
    }
    const attempts = Math.min(attempt + 1, step.retries + 1);
    outcomes.push({ step: name, ok: last.ok, attempts, message: last.message });
    if (!last.ok) {
      const tail = last.output.trim() ? `; output: ${lastLines(last.output, 10)}` : '';
      return { ok: false, message: `${ctx.phase} hook "${name}" failed after ${attempts} attempt${attempts > 1 ? 's' : ''}: ${last.message}${tail}`, steps: outcomes };
    }
  }
  return { ok: true, message: outcomes.length ? `${ctx.phase} hooks passed (${outcomes.map((o) => o.step).join(', ')})` : '', steps: outcomes };
}

async function runStep(step: HookStep, ctx: HookContext, deps: HookDeps, signal?: AbortSignal): Promise<{ ok: boolean; message: string; output: string }> {
  const timeoutMs = step.timeoutSeconds * 1000;
  if ('exec' in step) return (deps.exec ?? runExec)(step.exec.command, ctx, timeoutMs, signal);
  if ('http' in step) return runHttp(step.http, ctx, timeoutMs, signal);
  const pg = step.backup.postgres;
  const url = pg.databaseUrl ?? ctx.vars[pg.env!];
  if (!url) return { ok: false, message: `backup: the app has no environment variable ${pg.env} with the database URL`, output: '' };
  const r = await backupPostgres({ stateDir: deps.stateDir, env: ctx.env, app: ctx.app, revision: ctx.revision, version: ctx.version, databaseUrl: url, retain: step.backup.retain, timeoutMs, signal });
  return { ok: true, message: `backup written: ${r.file} (${r.bytes} bytes)`, output: '' };
}

/** Runs argv (never a shell) in its own process group; on timeout the whole group is killed. */
export function runExec(argv: string[], ctx: HookContext, timeoutMs: number, signal?: AbortSignal): Promise<{ ok: boolean; message: string; output: string }> {
  return runArgv(argv, { cwd: ctx.cwd, vars: { ...ctx.vars, ...hookVars(ctx) } }, timeoutMs, signal);
}

/**
 * `runExec` with the variables already made: in `cwd`, with a minimal base environment plus `vars`; as another user
 * when `uid`/`gid` are given (supplementary groups cleared), with `env` then overriding HOME and the like.
 */
export function runArgv(
  argv: string[],
  o: { cwd: string; vars: Record<string, string>; uid?: number; gid?: number; env?: Record<string, string> },
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<{ ok: boolean; message: string; output: string }> {
  return new Promise((resolve) => {
    const base: Record<string, string> = {};
    for (const k of ['PATH', 'HOME', 'LANG', 'TZ', 'TMPDIR']) if (process.env[k] !== undefined) base[k] = process.env[k]!;
    const ids = o.uid !== undefined ? { uid: o.uid, gid: o.gid } : {};
    const child = spawn(argv[0], argv.slice(1), { cwd: o.cwd, env: { ...base, ...o.env, ...o.vars }, stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...ids });
    let output = '';
    const add = (c: Buffer) => {
      output += c.toString('utf8');
      if (output.length > 2 * outputLimit) output = output.slice(-outputLimit);
    };
    child.stdout.on('data', add);
    child.stderr.on('data', add);
    let timedOut = false;
    const kill = (sig: NodeJS.Signals) => {
      try {
        if (child.pid) process.kill(-child.pid, sig);
      } catch {
        /* already gone */
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill('SIGTERM');
      setTimeout(() => kill('SIGKILL'), 2000).unref();
    }, timeoutMs);
    const onAbort = () => kill('SIGKILL');
    signal?.addEventListener('abort', onAbort, { once: true });
    child.once('error', (err) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve({ ok: false, message: `cannot run ${JSON.stringify(argv[0])} in ${o.cwd}: ${err.message}`, output: '' });
    });
    child.once('close', (code, sig) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      output = output.slice(-outputLimit);
      if (timedOut) return resolve({ ok: false, message: `timed out after ${timeoutMs / 1000}s`, output });
      if (code === 0) return resolve({ ok: true, message: 'exited 0', output });
      resolve({ ok: false, message: sig ? `killed by ${sig}` : `exited ${code}`, output });
    });
  });
}

function substitute(text: string, ctx: HookContext): string {
  return text
    .replaceAll('{port}', ctx.port === undefined ? '' : String(ctx.port))
    .replaceAll('{version}', encodeURIComponent(ctx.version))
    .replaceAll('{env}', ctx.env)
    .replaceAll('{app}', ctx.app);
}

async function runHttp(
  h: { url: string; method: string; expectStatus: number[]; body?: string; headers: Record<string, string> },
  ctx: HookContext,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<{ ok: boolean; message: string; output: string }> {
  const url = substitute(h.url, ctx);
  const shown = redactUrl(url);
  const signals = [AbortSignal.timeout(timeoutMs), ...(signal ? [signal] : [])];
  try {
    const res = await fetch(url, { method: h.method, headers: { 'user-agent': 'keelson-hook', ...h.headers }, body: h.body, signal: AbortSignal.any(signals), redirect: 'manual' });
    const body = (await res.text().catch(() => '')).slice(0, outputLimit);
    const ok = h.expectStatus.includes(res.status);
    return { ok, message: `${h.method} ${shown} answered ${res.status}${ok ? '' : ` (expected ${h.expectStatus.join(' or ')})`}`, output: body };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why = e.name === 'TimeoutError' ? `timed out after ${timeoutMs / 1000}s` : (e.cause?.code ?? e.cause?.message ?? e.message);
    return { ok: false, message: `${h.method} ${shown} failed: ${why}`, output: '' };
  }
}


function lastLines(text: string, n: number): string {
  return text.trim().split('\n').slice(-n).join('\n');
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}
