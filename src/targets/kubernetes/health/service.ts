import type { Live, ObjectHealth } from './types.js';

/** A LoadBalancer Service is healthy once it has an address; every other type at once. */
export function serviceHealth(o: Live): ObjectHealth {
  if (o.spec?.type !== 'LoadBalancer') return { health: 'Healthy', message: 'service' };
  const ingress = o.status?.loadBalancer?.ingress ?? [];
  return ingress.length ? { health: 'Healthy', message: 'load balancer ready' } : { health: 'Progressing', message: 'waiting for a load balancer address' };
}
