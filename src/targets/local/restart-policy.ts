/**
 * The restart policy of a replica that exited on its own (the supervisor calls it from its exit handler): how long
 * it waits before it starts again, like a kubelet's CrashLoopBackOff with one difference. A serving replica killed
 * from outside (kill -9, the OOM killer of the system, chaos) proved it starts fine: it restarts at once, up to
 * `maxPromptRestarts` a minute. Everything else (crashes, exits before ready, an OOM kill over its own limit) backs
 * off: at once the first time, then 1 s doubling to 5 min; the count resets after 10 min ready.
 */
import type { Replica } from './supervisor-types.js';

const backoffBaseMs = 1000;
const backoffCapMs = 5 * 60_000;
const backoffResetMs = 10 * 60_000;
const maxPromptRestarts = 30;
const externalSignals = new Set<string>(['SIGKILL', 'SIGTERM', 'SIGINT', 'SIGHUP']);

export interface ExitFacts {
  /** It was ready (serving) when it exited. */
  wasReady: boolean;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Killed for going over its own memory limit. */
  oom: boolean;
}

/** Milliseconds to wait before starting the replica again; updates its crash counters. */
export function restartDelay(r: Pick<Replica, 'readySince' | 'failures' | 'promptRestarts'>, e: ExitFacts): number {
  if (r.readySince && Date.now() - r.readySince >= backoffResetMs) r.failures = 0;
  const now = Date.now();
  r.promptRestarts = r.promptRestarts.filter((t) => now - t < 60_000);
  // An OOM kill is the app's own doing: it backs off like a crash (Kubernetes' CrashLoopBackOff).
  const killed = !e.oom && (e.signal ? externalSignals.has(e.signal) : e.code === null);
  let delayMs = 0;
  if (e.wasReady && killed && r.promptRestarts.length < maxPromptRestarts) {
    r.promptRestarts.push(now);
  } else {
    r.failures++;
    delayMs = r.failures <= 1 ? 0 : Math.min(backoffBaseMs * 2 ** (r.failures - 2), backoffCapMs);
  }
  return delayMs;
}
