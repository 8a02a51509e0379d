/** The targets `keelson up` offers: `local` (one instance for every local environment) and `kubernetes` (one per environment). */
import type { TargetSpec } from '../core/model.js';
import type { EventBus } from '../engine/events.js';
import type { Logger } from '../log.js';
import { KubernetesTarget, type KubernetesTargetOptions } from './kubernetes/kubernetes-target.js';
import { TargetRegistry } from './registry.js';
import type { Target } from './target.js';

export interface DefaultTargetsOptions {
  local: Target;
  store: { getKv(key: string): string | undefined; setKv(key: string, value: string): void };
  bus: EventBus;
  log: Logger;
  requeue: (env: string) => void;
  specOf: (env: string) => TargetSpec | undefined;
}

export function createTargetRegistry(o: DefaultTargetsOptions): TargetRegistry {
  const registry = new TargetRegistry({
    specOf: o.specOf,
    store: o.store,
    factories: {
      local: { keyOf: () => 'local', create: () => o.local },
      kubernetes: {
        keyOf: (env, spec) => `${env}:${JSON.stringify(spec)}`,
        create: (env, spec) =>
          new KubernetesTarget({ env, spec: spec as KubernetesTargetOptions['spec'], store: o.store, bus: o.bus, log: o.log.child({ target: 'kubernetes', env }), requeue: o.requeue }),
      },
    },
  });
  registry.register('local', '', {}, o.local);
  return registry;
}
