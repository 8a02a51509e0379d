import { describe, expect, it } from 'vitest';
import type { KObject } from './objects.js';
import { podExit, runJob, runnableWorkload } from './run-job.js';

const deployment: KObject = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'web', namespace: 'shop' },
  spec: {
    selector: { matchLabels: { app: 'web' } },
    template: {
      metadata: { labels: { app: 'web' }, annotations: { 'keelson.dev/secrets': 'abc' } },
      spec: {
        serviceAccountName: 'web',
        containers: [
          { name: 'web', image: 'r/web:1', args: ['serve'], env: [{ name: 'A', value: 'b' }], readinessProbe: {}, livenessProbe: {}, ports: [{ containerPort: 80 }] },
          { name: 'sidecar', image: 'r/proxy:1' },
        ],
      },
    },
  },
};

describe('one-off runs as Jobs', () => {
  it('makes a never-retried Job of the pod template: first container, command replaced, probes and ports dropped, own labels', () => {
    const job = runJob({ env: 'prod', app: 'web', namespace: 'shop', workload: deployment, argv: ['rake', 'db:migrate'], timeoutMs: 90_500 }) as any;
    expect(job.metadata.name).toMatch(/^web-run-[0-9a-f]{6}$/);
    expect(job.metadata.namespace).toBe('shop');
    expect(job.spec).toMatchObject({ backoffLimit: 0, activeDeadlineSeconds: 91, ttlSecondsAfterFinished: 600 });
    const pod = job.spec.template;
    expect(pod.metadata.labels).toEqual({ 'app.kubernetes.io/managed-by': 'keelson', 'keelson.dev/env': 'prod', 'keelson.dev/app': 'web', 'keelson.dev/run': job.metadata.name });
    expect(pod.metadata.annotations).toEqual({ 'keelson.dev/secrets': 'abc' });
    expect(pod.spec.restartPolicy).toBe('Never');
    expect(pod.spec.serviceAccountName).toBe('web');
    expect(pod.spec.containers).toEqual([{ name: 'web', image: 'r/web:1', env: [{ name: 'A', value: 'b' }], command: ['rake', 'db:migrate'] }]);
    // The app's own template is untouched.
    expect((deployment as any).spec.template.spec.containers[0].args).toEqual(['serve']);
  });

  it('finds the workload to run in and reads the exit code', () => {
    expect(runnableWorkload([{ apiVersion: 'v1', kind: 'Service', metadata: { name: 's' } }, deployment])).toBe(deployment);
    expect(runnableWorkload([{ apiVersion: 'v1', kind: 'Service', metadata: { name: 's' } }])).toBeUndefined();
    expect(podExit({ status: { containerStatuses: [{ state: { terminated: { exitCode: 3, reason: 'Error' } } }] } })).toEqual({ code: 3, reason: 'Error' });
    expect(podExit(undefined)).toEqual({ code: null, reason: undefined });
  });
});
