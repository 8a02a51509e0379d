/** Types of test/crash-driver.mjs (the crash driver, shared with bench/crash-driver.mjs). */
export type Strategy = 'rolling' | 'blueGreen' | 'canary';
export interface Divergence {
  kill: number;
  app?: string;
  check: string;
  detail: string;
}
export interface CrashDriverResult {
  seed: number;
  kills: number;
  survived: number;
  /** Kills that landed while a bumped app still ran another version. */
  midRollout: number;
  divergences: Divergence[];
  requests: number;
  failedRequests: number;
  failures: { app: string; at: number; error: string }[];
  convergenceMs: number[];
  stateDir: string;
  tmp: string;
}
export function prng(seed: number): () => number;
export function runCrashDriver(o?: {
  seed?: number;
  kills?: number;
  /** Replicas of every app (default 2). */
  replicas?: number;
  strategies?: Strategy[];
  maxDelayMs?: number;
  convergeMs?: number;
  settleMs?: number;
  keepGoing?: boolean;
  keepTmp?: boolean;
  log?: (line: string) => void;
}): Promise<CrashDriverResult>;
