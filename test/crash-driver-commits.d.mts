/** Types of test/crash-driver-commits.mjs (the crash driver's engine-commit mode, shared with bench/crash-driver.mjs). */
export interface CommitCrashResult {
  seed: number;
  kills: number;
  survived: number;
  /** Kills after a new release (the version automation commits) and after a rollback request. */
  byKind: { auto: number; rollback: number };
  /** Kills after which the engine's commit was already on the remote. */
  pushedBeforeKill: number;
  divergences: { kill: number; check: string; detail: string }[];
  convergenceMs: number[];
  tmp: string;
}
export function runCommitCrashDriver(o?: {
  seed?: number;
  kills?: number;
  maxDelayMs?: number;
  convergeMs?: number;
  keepGoing?: boolean;
  keepTmp?: boolean;
  log?: (line: string) => void;
}): Promise<CommitCrashResult>;
