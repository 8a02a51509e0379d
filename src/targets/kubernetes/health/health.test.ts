import { describe, expect, it } from 'vitest';
import { combinedHealth, objectHealth } from './index.js';

const meta = { name: 'x', generation: 2 };

describe('health per kind', () => {
  it('Deployment: progressing, healthy, deadline exceeded', () => {
    expect(objectHealth('Deployment', { metadata: meta, spec: { replicas: 2 }, status: { observedGeneration: 1 } }).health).toBe('Progressing');
    expect(objectHealth('Deployment', { metadata: meta, spec: { replicas: 2 }, status: { observedGeneration: 2, replicas: 2, updatedReplicas: 2, availableReplicas: 2 } }).health).toBe('Healthy');
    expect(objectHealth('Deployment', { metadata: meta, spec: { replicas: 2 }, status: { observedGeneration: 2, replicas: 3, updatedReplicas: 2, availableReplicas: 2 } }).health).toBe('Progressing');
    expect(
      objectHealth('Deployment', {
        metadata: meta,
        spec: { replicas: 2 },
        status: { observedGeneration: 2, conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: 'ReplicaSet "x" has timed out progressing.' }] },
      }).health,
    ).toBe('Degraded');
    expect(objectHealth('Deployment', { metadata: meta, spec: { paused: true } }).health).toBe('Suspended');
  });

  it('StatefulSet, DaemonSet, ReplicaSet', () => {
    expect(objectHealth('StatefulSet', { metadata: meta, spec: { replicas: 1 }, status: { observedGeneration: 2, readyReplicas: 1, currentRevision: 'a', updateRevision: 'a' } }).health).toBe('Healthy');
    expect(objectHealth('StatefulSet', { metadata: meta, spec: { replicas: 1 }, status: { observedGeneration: 2, readyReplicas: 1, currentRevision: 'a', updateRevision: 'b' } }).health).toBe('Progressing');
    expect(objectHealth('DaemonSet', { metadata: meta, status: { observedGeneration: 2, desiredNumberScheduled: 2, updatedNumberScheduled: 2, numberAvailable: 1 } }).health).toBe('Progressing');
    expect(objectHealth('ReplicaSet', { metadata: meta, spec: { replicas: 1 }, status: { observedGeneration: 2, conditions: [{ type: 'ReplicaFailure', status: 'True', message: 'quota' }] } }).health).toBe('Degraded');
  });

  it('Pod, Job, Service, PVC, Ingress', () => {
    expect(objectHealth('Pod', { metadata: meta, status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] } }).health).toBe('Healthy');
    expect(objectHealth('Pod', { metadata: meta, status: { phase: 'Running', containerStatuses: [{ name: 'a', state: { waiting: { reason: 'CrashLoopBackOff' } } }] } }).health).toBe('Degraded');
    expect(objectHealth('Job', { metadata: meta, status: { conditions: [{ type: 'Complete', status: 'True' }] } }).health).toBe('Healthy');
    expect(objectHealth('Job', { metadata: meta, status: { conditions: [{ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded' }] } }).health).toBe('Degraded');
    expect(objectHealth('Service', { metadata: meta, spec: { type: 'ClusterIP' } }).health).toBe('Healthy');
    expect(objectHealth('Service', { metadata: meta, spec: { type: 'LoadBalancer' }, status: {} }).health).toBe('Progressing');
    expect(objectHealth('PersistentVolumeClaim', { metadata: meta, status: { phase: 'Pending' } }).health).toBe('Progressing');
    expect(objectHealth('Ingress', { metadata: meta, status: { loadBalancer: { ingress: [{ ip: '10.0.0.1' }] } } }).health).toBe('Healthy');
  });

  it('unknown kinds are healthy once applied; absent objects are Missing', () => {
    expect(objectHealth('Widget', { metadata: meta }).health).toBe('Healthy');
    expect(objectHealth('Deployment', undefined).health).toBe('Missing');
  });

  it('an app is as healthy as its worst object', () => {
    const h = combinedHealth([
      { key: 'a', health: 'Healthy', message: 'ok' },
      { key: 'b', health: 'Degraded', message: 'deadline' },
      { key: 'c', health: 'Progressing', message: '1 of 2' },
    ]);
    expect(h).toEqual({ health: 'Degraded', message: 'b: deadline' });
  });
});
