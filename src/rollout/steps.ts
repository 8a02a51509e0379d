/**
 * The step machine of a progressive rollout, pure and target-neutral: a strategy becomes a list of steps that a
 * target's driver carries out (src/rollout/runner.ts). Kubernetes and the local target share it.
 */
import { createHash } from 'node:crypto';
import type { AnalysisSpec, RolloutSpec } from '../core/rollout.js';

export type RolloutStep =
  /** Bring the new set to `replicas` ready replicas (within the progress deadline). */
  | { kind: 'scale'; replicas: number }
  /** Share of new requests (percent) sent to the new set; 100 is the blue/green switch. */
  | { kind: 'setWeight'; weight: number }
  /** Wait `durationSeconds`, or until promote-rollout without it. */
  | { kind: 'pause'; durationSeconds?: number; reason: string }
  /** Measure the new set; failure aborts, inconclusive pauses until promote-rollout. */
  | { kind: 'analysis'; name: string; analysis: AnalysisSpec }
  /** Keep the stable set running until `seconds` after the switch (blue/green scale-down delay). */
  | { kind: 'holdStable'; seconds: number }
  /** The new set is the app: the stable set is scaled down. */
  | { kind: 'promote' };

/** Steps of a strategy for an app of `replicas` replicas. */
export function planRollout(spec: RolloutSpec, replicas: number): RolloutStep[] {
  const steps: RolloutStep[] = [];
  if (spec.strategy === 'blueGreen') {
    const bg = spec.blueGreen;
    steps.push({ kind: 'scale', replicas });
    if (bg.prePromotionAnalysis) steps.push({ kind: 'analysis', name: 'pre-promotion', analysis: bg.prePromotionAnalysis });
    if (!bg.autoPromotionEnabled) steps.push({ kind: 'pause', reason: 'new version ready; waiting for promote-rollout to switch traffic' });
    steps.push({ kind: 'setWeight', weight: 100 });
    if (bg.postPromotionAnalysis) steps.push({ kind: 'analysis', name: 'post-promotion', analysis: bg.postPromotionAnalysis });
    if (bg.scaleDownDelaySeconds > 0) steps.push({ kind: 'holdStable', seconds: bg.scaleDownDelaySeconds });
    steps.push({ kind: 'promote' });
    return steps;
  }
  if (spec.strategy === 'canary') {
    let n = 0;
    for (const s of spec.canary.steps) {
      if ('setWeight' in s) {
        steps.push({ kind: 'scale', replicas: canaryReplicas(replicas, s.setWeight) });
        steps.push({ kind: 'setWeight', weight: s.setWeight });
      } else if ('pause' in s) {
        const d = s.pause.durationSeconds;
        steps.push(d === undefined ? { kind: 'pause', reason: 'canary step: waiting for promote-rollout' } : { kind: 'pause', durationSeconds: d, reason: `canary step: pause ${d}s` });
      } else {
        steps.push({ kind: 'analysis', name: `canary step ${++n}`, analysis: s.analysis });
      }
    }
    steps.push({ kind: 'scale', replicas }, { kind: 'setWeight', weight: 100 }, { kind: 'promote' });
    return steps;
  }
  return [{ kind: 'scale', replicas }, { kind: 'setWeight', weight: 100 }, { kind: 'promote' }];
}

/** Replicas of the canary set at a weight: its share of the app's replicas, at least one while it takes traffic. */
export function canaryReplicas(replicas: number, weight: number): number {
  if (weight <= 0) return Math.min(1, replicas);
  return Math.min(replicas, Math.max(1, Math.ceil((replicas * weight) / 100)));
}

/** What a step does, for events and status. */
export function describeStep(s: RolloutStep): string {
  switch (s.kind) {
    case 'scale':
      return `scale the new version to ${s.replicas} ready replica${s.replicas === 1 ? '' : 's'}`;
    case 'setWeight':
      return `send ${s.weight}% of traffic to the new version`;
    case 'pause':
      return s.durationSeconds === undefined ? 'pause until promote-rollout' : `pause ${s.durationSeconds}s`;
    case 'analysis':
      return `${s.name} analysis (${s.analysis.metrics.map((m) => m.name).join(', ')})`;
    case 'holdStable':
      return `keep the old version for ${s.seconds}s after the switch`;
    case 'promote':
      return 'scale the old version down';
  }
}

/** Identity of a planned run of steps: a checkpoint resumes only a run of the very same steps. */
export function planDigest(steps: RolloutStep[]): string {
  return createHash('sha256').update(JSON.stringify(steps)).digest('hex').slice(0, 16);
}
