/**
 * The desired model of progressive rollouts (blue/green, canary): plain, serializable data; no I/O.
 * It sits on DesiredApp as `rollout` but is not part of the app's template, so changing a strategy alone never
 * restarts a process; it decides how the next new template is brought in.
 */

export type RolloutStrategy = 'rolling' | 'blueGreen' | 'canary';

/** Thresholds on the proxy's own request metrics of the new version, measured over each interval. */
export interface RequestMetricCheck {
  /** Highest share of 5xx answers, 0..1. */
  maxErrorRate?: number;
  /** Highest 99th percentile latency in milliseconds. */
  maxP99Ms?: number;
  /** Fewer requests than this in an interval make the measurement inconclusive. */
  minRequests: number;
}

export interface HttpCheck {
  /** Path requested from a ready replica of the new version (local target), or an absolute `url`. */
  path?: string;
  url?: string;
  method: string;
  expectStatus: number[];
}

export interface ExecCheck {
  /** argv, run in the new release directory; exit 0 passes, exit 1 fails, anything else is an error. */
  command: string[];
}

/**
 * One metric of an analysis, measured `count` times every `intervalSeconds` (Argo Rollouts semantics):
 * more than `failureLimit` failed measurements fail the analysis, more than `consecutiveErrorLimit` errors in a row
 * (no measurement could be taken) fail it too, more than `inconclusiveLimit` inconclusive ones make it inconclusive.
 */
export interface AnalysisMetric {
  name: string;
  intervalSeconds: number;
  count: number;
  failureLimit: number;
  consecutiveErrorLimit: number;
  inconclusiveLimit: number;
  timeoutSeconds: number;
  requests?: RequestMetricCheck;
  http?: HttpCheck;
  exec?: ExecCheck;
}

export interface AnalysisSpec {
  metrics: AnalysisMetric[];
}

export type CanaryStep =
  | { setWeight: number }
  /** Without `durationSeconds`: until `keelson promote-rollout`. */
  | { pause: { durationSeconds?: number } }
  | { analysis: AnalysisSpec };

export interface CanarySpec {
  steps: CanaryStep[];
  /** Keep each client on the version that first answered it (a cookie set by the proxy). */
  stickySessions: boolean;
}

export interface BlueGreenSpec {
  prePromotionAnalysis?: AnalysisSpec;
  postPromotionAnalysis?: AnalysisSpec;
  /** Switch as soon as the new set is ready (and the pre-promotion analysis passed); else wait for promote-rollout. */
  autoPromotionEnabled: boolean;
  /** Seconds the old set keeps running after the switch, so a failed post-promotion analysis switches straight back. */
  scaleDownDelaySeconds: number;
}

export type RolloutSpec =
  | { strategy: 'rolling' }
  | { strategy: 'blueGreen'; blueGreen: BlueGreenSpec }
  | { strategy: 'canary'; canary: CanarySpec };

export function strategyOf(spec: { rollout?: RolloutSpec }): RolloutStrategy {
  return spec.rollout?.strategy ?? 'rolling';
}
