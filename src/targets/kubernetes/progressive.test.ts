import { describe, expect, it } from 'vitest';
import type { DesiredApp } from '../../core/model.js';
import type { RolloutSpec } from '../../core/rollout.js';
import { ANNOTATION_APPLIED, withOwnership } from './objects.js';
import { asSets, LABEL_SET, restamp, setOf } from './progressive.js';
import { imageObjects } from './render.js';

const app = (rollout: RolloutSpec, over: Partial<DesiredApp> = {}): DesiredApp => ({
  name: 'web',
  env: 'prod',
  version: '1.0.0',
  artifact: {},
  command: [],
  vars: {},
  replicas: 2,
  port: 8080,
  dependsOn: [],
  progressDeadlineSeconds: 10,
  terminationGracePeriodSeconds: 5,
  source: { file: 'apps/web.yaml', line: 1, col: 1 },
  image: 'registry.example/web',
  rollout,
  ...over,
});
const bg: RolloutSpec = { strategy: 'blueGreen', blueGreen: { autoPromotionEnabled: true, scaleDownDelaySeconds: 30 } };
const canary: RolloutSpec = { strategy: 'canary', canary: { stickySessions: true, steps: [{ setWeight: 20 }] } };

describe('Kubernetes sets', () => {
  it('leaves rolling apps alone', () => {
    const a = app({ strategy: 'rolling' });
    expect(asSets(a, imageObjects(a))).toEqual(imageObjects(a));
  });

  it('names the Deployment after its pod template; blue/green Services select the set, canary Services every set', () => {
    const a = app(bg);
    const [dep, svc] = asSets(a, imageObjects(a)) as any[];
    expect(dep.metadata.name).toMatch(/^web-[0-9a-f]{10}$/);
    const set = setOf(dep)!;
    expect(dep.metadata.name).toBe(`web-${set}`);
    expect(dep.spec.template.metadata.labels[LABEL_SET]).toBe(set);
    expect(svc.spec.selector[LABEL_SET]).toBe(set);
    const [dep2, svc2] = asSets(app(canary), imageObjects(app(canary))) as any[];
    expect(dep2.metadata.name).toBe(dep.metadata.name); // the strategy is not part of the template
    expect(svc2.spec.selector[LABEL_SET]).toBeUndefined();
    // A new version is a new set; replicas alone are not.
    expect(setOf(asSets(a, imageObjects(app(bg, { version: '2.0.0' })))[0])).not.toBe(set);
    expect(setOf(asSets(a, imageObjects(app(bg, { replicas: 5 })))[0])).toBe(set);
  });

  it('rejects what Kubernetes cannot do, naming the app and metric', () => {
    const withRequests: RolloutSpec = {
      strategy: 'canary',
      canary: {
        stickySessions: true,
        steps: [{ analysis: { metrics: [{ name: 'errors', intervalSeconds: 5, count: 1, failureLimit: 0, consecutiveErrorLimit: 4, inconclusiveLimit: 0, timeoutSeconds: 5, requests: { minRequests: 1, maxErrorRate: 0.01 } }] } }],
      },
    };
    expect(() => asSets(app(withRequests), imageObjects(app(withRequests)))).toThrow(/app web: analysis metric "errors" uses "requests"/);
    expect(() => asSets(app(bg, { manifests: { dir: 'k8s', replicas: false } }), [])).toThrow('app web: rollout.strategy blueGreen needs exactly one Deployment in its manifests, found 0; split the app, or use strategy: rolling');
  });

  it('restamps a changed object with its own applied hash', () => {
    const [dep] = imageObjects(app(bg));
    const owned = withOwnership(dep, 'prod', 'web');
    expect(restamp(owned, 'prod', 'web')).toEqual(owned);
    const scaled = restamp({ ...owned, spec: { ...(owned as any).spec, replicas: 7 } } as any, 'prod', 'web');
    expect(scaled.metadata.annotations?.[ANNOTATION_APPLIED]).not.toBe(owned.metadata.annotations?.[ANNOTATION_APPLIED]);
  });
});
