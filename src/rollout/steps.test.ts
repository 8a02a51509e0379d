import { describe, expect, test } from 'vitest';
import type { AnalysisSpec } from '../core/rollout.js';
import { canaryReplicas, describeStep, planRollout } from './steps.js';

const analysis: AnalysisSpec = {
  metrics: [{ name: 'errors', intervalSeconds: 1, count: 2, failureLimit: 0, consecutiveErrorLimit: 4, inconclusiveLimit: 0, timeoutSeconds: 5, requests: { maxErrorRate: 0.05, minRequests: 1 } }],
};

describe('planRollout', () => {
  test('blue/green: whole new set, pre-analysis, switch, post-analysis, scale-down delay, promote', () => {
    const steps = planRollout(
      { strategy: 'blueGreen', blueGreen: { autoPromotionEnabled: true, scaleDownDelaySeconds: 30, prePromotionAnalysis: analysis, postPromotionAnalysis: analysis } },
      3,
    );
    expect(steps.map(describeStep)).toEqual([
      'scale the new version to 3 ready replicas',
      'pre-promotion analysis (errors)',
      'send 100% of traffic to the new version',
      'post-promotion analysis (errors)',
      'keep the old version for 30s after the switch',
      'scale the old version down',
    ]);
  });

  test('blue/green without auto promotion pauses before the switch', () => {
    const steps = planRollout({ strategy: 'blueGreen', blueGreen: { autoPromotionEnabled: false, scaleDownDelaySeconds: 0 } }, 1);
    expect(steps.map((s) => s.kind)).toEqual(['scale', 'pause', 'setWeight', 'promote']);
  });

  test('canary: each weight scales the canary set to its share, then full scale, 100% and promote', () => {
    const steps = planRollout(
      { strategy: 'canary', canary: { stickySessions: true, steps: [{ setWeight: 20 }, { pause: {} }, { analysis }, { setWeight: 60 }, { pause: { durationSeconds: 10 } }] } },
      4,
    );
    expect(steps.map(describeStep)).toEqual([
      'scale the new version to 1 ready replica',
      'send 20% of traffic to the new version',
      'pause until promote-rollout',
      'canary step 1 analysis (errors)',
      'scale the new version to 3 ready replicas',
      'send 60% of traffic to the new version',
      'pause 10s',
      'scale the new version to 4 ready replicas',
      'send 100% of traffic to the new version',
      'scale the old version down',
    ]);
  });

  test('canary replicas: at least one while it takes traffic, never more than the app', () => {
    expect([0, 1, 10, 50, 100].map((w) => canaryReplicas(2, w))).toEqual([1, 1, 1, 1, 2]);
    expect(canaryReplicas(0, 50)).toBe(0);
  });
});
