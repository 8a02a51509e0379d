import { condition, type Live, type ObjectHealth } from './types.js';

export function jobHealth(o: Live): ObjectHealth {
  if (o.spec?.suspend) return { health: 'Suspended', message: 'job suspended' };
  const failed = condition(o, 'Failed');
  if (failed?.status === 'True') return { health: 'Degraded', message: `job failed: ${failed.reason ?? ''} ${failed.message ?? ''}`.trim() };
  if (condition(o, 'Complete')?.status === 'True') return { health: 'Healthy', message: 'job completed' };
  return { health: 'Progressing', message: `job running (${o.status?.succeeded ?? 0} succeeded)` };
}
