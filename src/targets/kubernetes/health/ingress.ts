import type { Live, ObjectHealth } from './types.js';

export function ingressHealth(o: Live): ObjectHealth {
  const ingress = o.status?.loadBalancer?.ingress ?? [];
  return ingress.length ? { health: 'Healthy', message: 'ingress has an address' } : { health: 'Progressing', message: 'waiting for an ingress address' };
}
