/** The targets `keelson up` offers: `local` (one instance for every local environment) and `kubernetes` (one per environment). */
import { join } from 'node:path';
import type { DesiredApp, TargetSpec } from '../core/model.js';
import type { EventBus } from '../core/events.js';
import type { Logger } from '../log.js';
import type { RunResult, RunSink } from '../run/one-off.js';
import { TerminalError } from '../core/errors.js';
import type { HelmTestReport } from './kubernetes/helm-tests.js';
import type { KubernetesTargetOptions } from './kubernetes/kubernetes-target.js';
import { kubernetesTemplateOf } from './kubernetes/template.js';
import { TargetRegistry } from './registry.js';
import type { ApplyContext, ApplyOutcome, LiveApp, ObjectDiff, Target } from './target.js';

export interface DefaultTargetsOptions {
  local: Target;
  store: { getKv(key: string): string | undefined; setKv(key: string, value: string): void };
  bus: EventBus;
  log: Logger;
  requeue: (env: string) => void;
  specOf: (env: string) => TargetSpec | undefined;
  /** The engine's state directory: Kubernetes targets cache remote Helm charts in `<stateDir>/charts`. */
  stateDir?: string;
  /** Whether this engine may write to an environment now (its claim): Kubernetes targets heal drift only then. */
  mayWrite?: (env: string) => boolean;
  /** Changes each time this engine starts holding an environment's claim: Kubernetes targets then recover their records from live objects. */
  holdOf?: (env: string) => unknown;
}

export function createTargetRegistry(o: DefaultTargetsOptions): TargetRegistry {
  const registry = new TargetRegistry({
    specOf: o.specOf,
    store: o.store,
    factories: {
      local: { keyOf: () => 'local', create: () => o.local },
      kubernetes: {
        keyOf: (env, spec) => `${env}:${JSON.stringify(spec)}`,
        create: (env, spec) => {
          const k8s = spec as KubernetesTargetOptions['spec'];
          return new LazyTarget(
            'kubernetes',
            async () => {
              const { KubernetesTarget } = await import('./kubernetes/kubernetes-target.js');
              return new KubernetesTarget({ env, spec: k8s, store: o.store, bus: o.bus, log: o.log.child({ target: 'kubernetes', env }), requeue: o.requeue, mayWrite: o.mayWrite, holdOf: o.holdOf, chartCacheDir: o.stateDir ? join(o.stateDir, 'charts') : undefined });
            },
            (app) => kubernetesTemplateOf(app, k8s.namespace),
          );
        },
      },
    },
  });
  registry.register('local', '', {}, o.local);
  return registry;
}

/**
 * A target whose module loads on first use: an engine with only local environments never loads the Kubernetes
 * client (about 45 MiB of memory, and its own Node version requirements).
 */
class LazyTarget implements Target {
  private loading?: Promise<Target>;
  private inner?: Target;

  constructor(
    readonly name: string,
    private readonly load: () => Promise<Target>,
    private readonly template: (app: DesiredApp) => string,
  ) {}

  private get(): Promise<Target> {
    this.loading ??= this.load().then((t) => (this.inner = t));
    return this.loading;
  }

  async start(): Promise<void> {
    await (await this.get()).start();
  }

  async close(): Promise<void> {
    if (this.loading) await (await this.loading).close();
  }

  templateOf(app: DesiredApp): string {
    return this.inner ? this.inner.templateOf(app) : this.template(app);
  }

  async observe(env: string): Promise<LiveApp[]> {
    return (await this.get()).observe(env);
  }

  async apply(app: DesiredApp, ctx: ApplyContext): Promise<ApplyOutcome> {
    return (await this.get()).apply(app, ctx);
  }

  async delete(env: string, app: string): Promise<void> {
    return (await this.get()).delete(env, app);
  }

  async settleAdopted(app: DesiredApp, ctx: ApplyContext): Promise<ApplyOutcome | undefined> {
    return (await this.get()).settleAdopted?.(app, ctx);
  }

  logs(env: string, app: string): { replica: string; path: string }[] {
    return this.inner?.logs(env, app) ?? [];
  }

  synced(env: string, app: string): void {
    this.inner?.synced?.(env, app);
  }

  concurrencyOf(env: string): number | undefined {
    return this.inner?.concurrencyOf?.(env);
  }

  async diff(app: DesiredApp, ctx: ApplyContext): Promise<ObjectDiff[]> {
    const t = await this.get();
    return t.diff ? t.diff(app, ctx) : [];
  }

  async helmTests(app: DesiredApp, ctx: ApplyContext): Promise<HelmTestReport> {
    const t = await this.get();
    if (!t.helmTests) throw new TerminalError(`environment ${app.env} runs on the ${t.name} target, which has no Helm charts to test`);
    return t.helmTests(app, ctx);
  }

  async runOnce(env: string, app: string, argv: string[], io: { sink: RunSink; signal?: AbortSignal; timeoutMs?: number }): Promise<RunResult> {
    const t = await this.get();
    if (!t.runOnce) throw new Error(`environment ${env} runs on the ${t.name} target, which cannot run one-off commands`);
    return t.runOnce(env, app, argv, io);
  }
}
