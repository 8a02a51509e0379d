/** Types of test/crash-driver-k8s.mjs (the crash driver's Kubernetes mode, shared with bench/crash-driver.mjs). */
export interface KubernetesCrashResult {
  seed: number;
  kills: number;
  survived: number;
  /** Kills while the engine was syncing or an app was not yet Synced and Healthy. */
  midApply: number;
  /** Kills after a random delay, and after a random number of object changes seen in the namespace. */
  byTrigger: { delay: number; writes: number };
  divergences: { kill: number; app?: string; check: string; detail: string }[];
  convergenceMs: number[];
  namespace: string;
  tmp: string;
}
export function runKubernetesCrashDriver(o?: {
  seed?: number;
  kills?: number;
  maxDelayMs?: number;
  convergeMs?: number;
  /** rollout.progressDeadlineSeconds of the image apps (default 180). */
  progressDeadlineSeconds?: number;
  settleMs?: number;
  keepGoing?: boolean;
  keepTmp?: boolean;
  log?: (line: string) => void;
}): Promise<KubernetesCrashResult>;
