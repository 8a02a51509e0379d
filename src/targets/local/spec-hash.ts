import { createHash } from 'node:crypto';
import type { DesiredApp } from '../../core/model.js';

/**
 * Hash of everything that needs new processes when it changes (the "pod template"): not replicas, port,
 * the rollout strategy or where the declaration sits in the repository.
 */
export function templateHash(app: DesiredApp): string {
  const { replicas: _r, port: _p, host: _h, source: _s, dependsOn: _d, rollout: _ro, ...template } = app;
  return createHash('sha256').update(stableJson(template)).digest('hex').slice(0, 16);
}

export function stableJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${stableJson(o[k])}`)
    .join(',')}}`;
}
