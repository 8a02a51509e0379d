import type { HealthCode } from '../../core/types.js';
import { combinedHealth, objectHealth } from './health/index.js';
import { formatKey, type KObject } from './objects.js';
import type { ObjectWatch } from './watch.js';

/** Resolves when every object is Healthy, or one is Degraded, or the time is up (then the worst state). */
export function waitHealthy(watch: ObjectWatch, objects: KObject[], timeoutMs: number): Promise<{ health: HealthCode; message: string }> {
  const evaluate = () => combinedHealth(objects.map((d) => ({ key: formatKey(d), ...objectHealth(d.kind, watch.get(d) as never) })));
  return new Promise((resolve) => {
    const check = () => {
      const h = evaluate();
      if (h.health === 'Healthy' || h.health === 'Degraded') done(h);
    };
    const done = (h: { health: HealthCode; message: string }) => {
      clearTimeout(timer);
      off();
      resolve(h);
    };
    const timer = setTimeout(() => {
      const h = evaluate();
      done(h.health === 'Healthy' ? h : { health: 'Degraded', message: `not healthy within ${Math.round(timeoutMs / 1000)}s: ${h.message}` });
    }, timeoutMs);
    const off = watch.onObjects(objects, check);
    check();
  });
}
