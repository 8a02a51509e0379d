import type { Live, ObjectHealth } from './types.js';

export function pvcHealth(o: Live): ObjectHealth {
  const phase = o.status?.phase;
  if (phase === 'Bound') return { health: 'Healthy', message: 'bound' };
  if (phase === 'Lost') return { health: 'Degraded', message: 'volume lost' };
  return { health: 'Progressing', message: `claim ${phase ?? 'Pending'}` };
}
