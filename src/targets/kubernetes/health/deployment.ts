import { condition, isStale, type Live, type ObjectHealth } from './types.js';

/** Like `kubectl rollout status`: all replicas updated, available and no old ones left; a missed deadline is Degraded. */
export function deploymentHealth(o: Live): ObjectHealth {
  if (o.spec?.paused) return { health: 'Suspended', message: 'rollout paused' };
  const progressing = condition(o, 'Progressing');
  if (progressing?.reason === 'ProgressDeadlineExceeded') {
    return { health: 'Degraded', message: `rollout did not progress within ${o.spec?.progressDeadlineSeconds ?? 600}s: ${progressing.message ?? ''}`.trim() };
  }
  if (isStale(o)) return { health: 'Progressing', message: 'waiting for the rollout to start' };
  const want = o.spec?.replicas ?? 1;
  const s = o.status ?? {};
  const updated = s.updatedReplicas ?? 0;
  const total = s.replicas ?? 0;
  const available = s.availableReplicas ?? 0;
  if (updated < want) return { health: 'Progressing', message: `${updated} of ${want} replicas updated` };
  if (total > updated) return { health: 'Progressing', message: `${total - updated} old replicas pending termination` };
  if (available < updated) return { health: 'Progressing', message: `${available} of ${updated} updated replicas available` };
  return { health: 'Healthy', message: `${available}/${want} replicas available` };
}
