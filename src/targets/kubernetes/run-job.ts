/**
 * `keelson run` on Kubernetes: a one-off command as a Job made from the app's pod template (its image, env,
 * secrets, volumes, service account), with the first container's command replaced, probes and ports dropped and
 * the pod labels replaced (so the app's Services and ReplicaSets never see the run's pod). The Job never retries
 * (`backoffLimit: 0`), is bounded by `activeDeadlineSeconds` when a timeout is given, and is garbage-collected by
 * `ttlSecondsAfterFinished` if Keelson cannot delete it.
 */
import { randomBytes } from 'node:crypto';
import { TerminalError } from '../../core/errors.js';
import { LABEL_APP, LABEL_ENV, LABEL_MANAGED_BY, type KObject } from './objects.js';

export const LABEL_RUN = 'keelson.dev/run';
const POD_OWNERS = ['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet'];

/** The workload whose pod template a run uses: the app's first Deployment/StatefulSet/DaemonSet/ReplicaSet. */
export function runnableWorkload(objects: KObject[]): KObject | undefined {
  for (const kind of POD_OWNERS) {
    const o = objects.find((x) => x.kind === kind);
    if (o) return o;
  }
  return undefined;
}

export function runJob(o: { env: string; app: string; namespace: string; workload: KObject; argv: string[]; timeoutMs?: number }): KObject {
  const template = structuredClone((o.workload as { spec?: { template?: any } }).spec?.template);
  if (!template?.spec?.containers?.length) throw new TerminalError(`${o.workload.kind} ${o.workload.metadata.name} has no pod template to run ${o.app}'s command in`);
  const [first] = template.spec.containers;
  delete first.args;
  delete first.readinessProbe;
  delete first.livenessProbe;
  delete first.startupProbe;
  delete first.ports;
  delete first.lifecycle;
  first.command = o.argv;
  const name = `${o.app}-run-${randomBytes(3).toString('hex')}`.replace(/^(.{0,52}).*?(-run-[0-9a-f]{6})$/, '$1$2');
  const labels = { [LABEL_MANAGED_BY]: 'keelson', [LABEL_ENV]: o.env, [LABEL_APP]: o.app, [LABEL_RUN]: name };
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace: o.namespace, labels },
    spec: {
      backoffLimit: 0,
      ttlSecondsAfterFinished: 600,
      ...(o.timeoutMs ? { activeDeadlineSeconds: Math.max(1, Math.ceil(o.timeoutMs / 1000)) } : {}),
      template: {
        metadata: { labels, annotations: template.metadata?.annotations },
        spec: { ...template.spec, restartPolicy: 'Never', containers: [first] },
      },
    },
  };
}

/** The exit of a finished run pod: its first container's exit code (null with a reason when it never ran). */
export function podExit(pod: { status?: any } | undefined): { code: number | null; reason?: string } {
  const t = pod?.status?.containerStatuses?.[0]?.state?.terminated;
  if (t) return { code: typeof t.exitCode === 'number' ? t.exitCode : null, reason: t.reason };
  return { code: null, reason: pod?.status?.reason };
}
