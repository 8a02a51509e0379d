import type { HealthCode } from '../../../core/types.js';

export interface ObjectHealth {
  health: HealthCode;
  message: string;
}

/** A live object as health checks read it. */
export type Live = { metadata: { generation?: number; deletionTimestamp?: string; name: string }; spec?: any; status?: any };

export type Condition = { type: string; status: string; reason?: string; message?: string };

export function condition(o: Live, type: string): Condition | undefined {
  return (o.status?.conditions as Condition[] | undefined)?.find((c) => c.type === type);
}

/** The controller has not seen the latest spec yet. */
export function isStale(o: Live): boolean {
  return o.metadata.generation !== undefined && (o.status?.observedGeneration ?? 0) < o.metadata.generation;
}
