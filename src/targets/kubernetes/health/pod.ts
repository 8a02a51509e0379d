import { condition, type Live, type ObjectHealth } from './types.js';

const crashing = new Set(['CrashLoopBackOff', 'ImagePullBackOff', 'ErrImagePull', 'CreateContainerConfigError', 'InvalidImageName', 'CreateContainerError']);

export function podHealth(o: Live): ObjectHealth {
  const s = o.status ?? {};
  if (s.phase === 'Succeeded') return { health: 'Healthy', message: 'completed' };
  if (s.phase === 'Failed') return { health: 'Degraded', message: s.message ?? s.reason ?? 'pod failed' };
  for (const c of [...(s.initContainerStatuses ?? []), ...(s.containerStatuses ?? [])]) {
    const reason = c.state?.waiting?.reason;
    if (reason && crashing.has(reason)) return { health: 'Degraded', message: `container ${c.name}: ${reason} ${c.state.waiting.message ?? ''}`.trim() };
  }
  const scheduled = condition(o, 'PodScheduled');
  if (scheduled?.status === 'False') return { health: 'Progressing', message: `not scheduled: ${scheduled.message ?? scheduled.reason ?? ''}`.trim() };
  if (condition(o, 'Ready')?.status === 'True') return { health: 'Healthy', message: 'ready' };
  return { health: 'Progressing', message: `pod ${s.phase ?? 'Pending'}, not ready` };
}
