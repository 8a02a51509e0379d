/** Health of a live object from its status, one check per kind; unknown kinds are healthy once applied. */
import { worstHealth, type HealthCode } from '../../../core/types.js';
import { daemonSetHealth } from './daemonset.js';
import { deploymentHealth } from './deployment.js';
import { ingressHealth } from './ingress.js';
import { jobHealth } from './job.js';
import { podHealth } from './pod.js';
import { pvcHealth } from './pvc.js';
import { replicaSetHealth } from './replicaset.js';
import { serviceHealth } from './service.js';
import { statefulSetHealth } from './statefulset.js';
import type { Live, ObjectHealth } from './types.js';

export type { ObjectHealth } from './types.js';

const checks: Record<string, (o: Live) => ObjectHealth> = {
  Deployment: deploymentHealth,
  StatefulSet: statefulSetHealth,
  DaemonSet: daemonSetHealth,
  ReplicaSet: replicaSetHealth,
  Pod: podHealth,
  Job: jobHealth,
  Service: serviceHealth,
  PersistentVolumeClaim: pvcHealth,
  Ingress: ingressHealth,
};

export function objectHealth(kind: string, live: Live | undefined): ObjectHealth {
  if (!live) return { health: 'Missing', message: 'not found in the cluster' };
  if (live.metadata.deletionTimestamp) return { health: 'Progressing', message: 'being deleted' };
  const check = checks[kind];
  return check ? check(live) : { health: 'Healthy', message: 'applied' };
}

/** The worst of the objects' health, with the message of the worst one. */
export function combinedHealth(items: { key: string; health: HealthCode; message: string }[]): ObjectHealth {
  if (items.length === 0) return { health: 'Healthy', message: 'no objects' };
  const health = worstHealth(items.map((i) => i.health));
  const worst = items.filter((i) => i.health === health);
  if (health === 'Healthy') return { health, message: `${items.length} objects healthy` };
  return { health, message: worst.map((w) => `${w.key}: ${w.message}`).join('; ') };
}
