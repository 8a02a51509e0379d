import { isStale, type Live, type ObjectHealth } from './types.js';

export function statefulSetHealth(o: Live): ObjectHealth {
  if (isStale(o)) return { health: 'Progressing', message: 'waiting for the rollout to start' };
  const want = o.spec?.replicas ?? 1;
  const s = o.status ?? {};
  if ((s.readyReplicas ?? 0) < want) return { health: 'Progressing', message: `${s.readyReplicas ?? 0} of ${want} replicas ready` };
  if (o.spec?.updateStrategy?.type !== 'OnDelete' && s.updateRevision && s.currentRevision !== s.updateRevision) {
    return { health: 'Progressing', message: `${s.updatedReplicas ?? 0} of ${want} replicas updated` };
  }
  return { health: 'Healthy', message: `${s.readyReplicas ?? 0}/${want} replicas ready` };
}
