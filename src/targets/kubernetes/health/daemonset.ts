import { isStale, type Live, type ObjectHealth } from './types.js';

export function daemonSetHealth(o: Live): ObjectHealth {
  if (isStale(o)) return { health: 'Progressing', message: 'waiting for the rollout to start' };
  const s = o.status ?? {};
  const want = s.desiredNumberScheduled ?? 0;
  if ((s.updatedNumberScheduled ?? 0) < want) return { health: 'Progressing', message: `${s.updatedNumberScheduled ?? 0} of ${want} pods updated` };
  if ((s.numberAvailable ?? 0) < want) return { health: 'Progressing', message: `${s.numberAvailable ?? 0} of ${want} pods available` };
  return { health: 'Healthy', message: `${s.numberAvailable ?? 0}/${want} pods available` };
}
