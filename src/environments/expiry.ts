/** On-demand environments expire: pure helpers the engine and the CLI share. */
import type { DesiredEnvironment } from '../core/model.js';

export type EnvironmentPhase = 'Active' | 'Expired';

export function isExpired(env: Pick<DesiredEnvironment, 'expiresAt'>, now = Date.now()): boolean {
  return env.expiresAt !== undefined && Date.parse(env.expiresAt) <= now;
}

export function phaseOf(env: Pick<DesiredEnvironment, 'expiresAt'>, now = Date.now()): EnvironmentPhase {
  return isExpired(env, now) ? 'Expired' : 'Active';
}

/** What the engine runs for an environment: an expired one runs nothing, so its apps are stopped and pruned. */
export function effectiveEnvironment(env: DesiredEnvironment, now = Date.now()): DesiredEnvironment {
  return isExpired(env, now) ? { ...env, apps: [] } : env;
}

/** Wakes the loop at the expiry instead of up to one resync later. */
export function requeueBeforeExpiry(env: Pick<DesiredEnvironment, 'expiresAt'>, resyncMs: number, now = Date.now()): number {
  if (env.expiresAt === undefined) return resyncMs;
  const left = Date.parse(env.expiresAt) - now;
  return left > 0 ? Math.min(resyncMs, left + 50) : resyncMs;
}
