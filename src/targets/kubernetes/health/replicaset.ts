import { condition, isStale, type Live, type ObjectHealth } from './types.js';

export function replicaSetHealth(o: Live): ObjectHealth {
  const failure = condition(o, 'ReplicaFailure');
  if (failure?.status === 'True') return { health: 'Degraded', message: failure.message ?? 'replica failure' };
  if (isStale(o)) return { health: 'Progressing', message: 'waiting for the controller' };
  const want = o.spec?.replicas ?? 1;
  const available = o.status?.availableReplicas ?? 0;
  if (available < want) return { health: 'Progressing', message: `${available} of ${want} replicas available` };
  return { health: 'Healthy', message: `${available}/${want} replicas available` };
}
