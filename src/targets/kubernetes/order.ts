/**
 * Apply order: Argo CD's sync waves (`argocd.argoproj.io/sync-wave`, default 0) ascending; inside a wave,
 * Namespaces and CRDs first, then kinds in dependency order (config before the workloads that mount it, Services
 * before the pods behind them), custom resources last. Prune (delete) runs in the reverse order.
 */
import { refOf, waveOf, type KObject } from './objects.js';

const KIND_ORDER = [
  'Namespace',
  'CustomResourceDefinition',
  'PriorityClass',
  'NetworkPolicy',
  'ResourceQuota',
  'LimitRange',
  'PodDisruptionBudget',
  'ServiceAccount',
  'Secret',
  'ConfigMap',
  'StorageClass',
  'PersistentVolume',
  'PersistentVolumeClaim',
  'ClusterRole',
  'ClusterRoleBinding',
  'Role',
  'RoleBinding',
  'Service',
  'DaemonSet',
  'Pod',
  'ReplicationController',
  'ReplicaSet',
  'Deployment',
  'HorizontalPodAutoscaler',
  'StatefulSet',
  'Job',
  'CronJob',
  'IngressClass',
  'Ingress',
  'APIService',
  'MutatingWebhookConfiguration',
  'ValidatingWebhookConfiguration',
];

export function kindRank(kind: string): number {
  const i = KIND_ORDER.indexOf(kind);
  return i === -1 ? KIND_ORDER.length : i;
}

/** Stable sort by (wave, kind, namespace, name). */
export function sortForApply(objects: KObject[]): KObject[] {
  return [...objects].sort(
    (a, b) =>
      waveOf(a) - waveOf(b) ||
      kindRank(a.kind) - kindRank(b.kind) ||
      (a.metadata.namespace ?? '').localeCompare(b.metadata.namespace ?? '') ||
      refOf(a).name.localeCompare(refOf(b).name), // hooks with generateName only: `migrate-*`
  );
}

/** Objects grouped by wave, each group in kind order. */
export function wavesOf(objects: KObject[]): { wave: number; objects: KObject[] }[] {
  const out: { wave: number; objects: KObject[] }[] = [];
  for (const o of sortForApply(objects)) {
    const w = waveOf(o);
    const last = out[out.length - 1];
    if (last && last.wave === w) last.objects.push(o);
    else out.push({ wave: w, objects: [o] });
  }
  return out;
}

/** Deletion order: last wave first, workloads before the config and namespaces they use. */
export function sortForDelete(objects: KObject[]): KObject[] {
  return sortForApply(objects).reverse();
}

/** Objects of the same rank can go to the server together; ranks (Namespaces, CRDs, …) go one after another. */
export function rankGroups(objects: KObject[]): KObject[][] {
  const out: KObject[][] = [];
  let rank = -1;
  for (const o of objects) {
    const r = kindRank(o.kind);
    if (r !== rank || out.length === 0) {
      out.push([]);
      rank = r;
    }
    out[out.length - 1].push(o);
  }
  return out;
}
