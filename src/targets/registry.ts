/**
 * Which Target runs an environment: the environment's `spec.target` kind → a Target instance, created on first
 * use. The registry is itself a Target that dispatches by environment, so the engine never asks which target it
 * talks to. An environment's target spec is remembered in the store, so an environment deleted from git is still
 * pruned by the target that ran it.
 */
import type { DesiredApp, TargetSpec } from '../core/model.js';
import type { RunResult, RunSink } from '../run/one-off.js';
import { TerminalError } from '../core/errors.js';
import type { HelmTestReport } from './kubernetes/helm-tests.js';
import type { ApplyContext, ApplyOutcome, HookExecRequest, LiveApp, ObjectDiff, Target } from './target.js';

export interface TargetFactory {
  /** Instances are shared by environments whose specs give the same key (the local target: one for all). */
  keyOf(env: string, spec: unknown): string;
  create(env: string, spec: unknown): Target;
}

export interface TargetRegistryOptions {
  factories: Record<string, TargetFactory>;
  /** The environment's target in the desired state (undefined when git no longer declares it). */
  specOf: (env: string) => TargetSpec | undefined;
  store: { getKv(key: string): string | undefined; setKv(key: string, value: string): void };
  /** Used when neither git nor the store know the environment. */
  fallback?: TargetSpec;
}

export class TargetRegistry implements Target {
  readonly name = 'registry';
  private readonly instances = new Map<string, Target>();
  private readonly starting = new Map<Target, Promise<void>>();
  private started = false;
  /** Each environment's target spec as last stored (JSON text). */
  private readonly remembered = new Map<string, string>();

  constructor(private readonly o: TargetRegistryOptions) {}

  /** Adds an already made instance (e.g. the local target, which `keelson up` needs for metrics). */
  register(kind: string, env: string, spec: unknown, target: Target): void {
    this.instances.set(`${kind}:${this.o.factories[kind]?.keyOf(env, spec) ?? ''}`, target);
  }

  /** The target of an environment (sync; starting it is awaited by the async methods). */
  targetOf(env: string): Target {
    const spec = this.specOf(env);
    const kind = Object.keys(spec)[0] ?? 'local';
    const factory = this.o.factories[kind];
    if (!factory) throw new Error(`environment ${env}: no target "${kind}" in this Keelson (targets: ${Object.keys(this.o.factories).join(', ')})`);
    const value = (spec as unknown as Record<string, unknown>)[kind];
    const key = `${kind}:${factory.keyOf(env, value)}`;
    let t = this.instances.get(key);
    if (!t) {
      t = factory.create(env, value);
      this.instances.set(key, t);
    }
    if (this.started && !this.starting.has(t)) this.starting.set(t, t.start());
    return t;
  }

  private specOf(env: string): TargetSpec {
    const spec = this.o.specOf(env);
    const key = `target.spec/${env}`;
    if (spec) {
      // Called for every app on every reconcile: compare in memory, write the store only on a change.
      const text = JSON.stringify(spec);
      if (this.remembered.get(env) !== text) {
        if (this.o.store.getKv(key) !== text) this.o.store.setKv(key, text);
        this.remembered.set(env, text);
      }
      return spec;
    }
    if (!this.remembered.has(env)) this.remembered.set(env, this.o.store.getKv(key) ?? '');
    const remembered = this.remembered.get(env);
    return remembered ? (JSON.parse(remembered) as TargetSpec) : (this.o.fallback ?? { local: {} });
  }

  private async ready(env: string): Promise<Target> {
    const t = this.targetOf(env);
    await this.starting.get(t);
    return t;
  }

  async start(): Promise<void> {
    this.started = true;
    for (const t of this.instances.values()) if (!this.starting.has(t)) this.starting.set(t, t.start());
    await Promise.all(this.starting.values());
  }

  async close(): Promise<void> {
    await Promise.all([...new Set(this.instances.values())].map((t) => t.close()));
  }

  /**
   * Memoized per desired app object (a render makes new ones, never changes them): status asks for every app's
   * template on every health check, and hashing a thousand specs each time was most of the engine's CPU.
   */
  private readonly templates = new WeakMap<DesiredApp, string>();

  templateOf(app: DesiredApp): string {
    let t = this.templates.get(app);
    if (t === undefined) this.templates.set(app, (t = this.targetOf(app.env).templateOf(app)));
    return t;
  }

  async observe(env: string): Promise<LiveApp[]> {
    return (await this.ready(env)).observe(env);
  }

  async apply(app: DesiredApp, ctx: ApplyContext): Promise<ApplyOutcome> {
    return (await this.ready(app.env)).apply(app, ctx);
  }

  async delete(env: string, app: string): Promise<void> {
    return (await this.ready(env)).delete(env, app);
  }

  async settleAdopted(app: DesiredApp, ctx: ApplyContext): Promise<ApplyOutcome | undefined> {
    return (await this.ready(app.env)).settleAdopted?.(app, ctx);
  }

  logs(env: string, app: string): { replica: string; path: string }[] {
    return this.targetOf(env).logs(env, app);
  }

  synced(env: string, app: string): void {
    this.targetOf(env).synced?.(env, app);
  }

  concurrencyOf(env: string): number | undefined {
    return this.targetOf(env).concurrencyOf?.(env);
  }

  async diff(app: DesiredApp, ctx: ApplyContext): Promise<ObjectDiff[]> {
    const t = await this.ready(app.env);
    return t.diff ? t.diff(app, ctx) : [];
  }

  /** Hook exec steps where the environment's target runs them; undefined: as a local process. */
  async hookExec(r: HookExecRequest): Promise<{ ok: boolean; message: string; output: string } | undefined> {
    const t = await this.ready(r.env);
    return t.hookExec ? t.hookExec(r) : undefined;
  }

  async helmTests(app: DesiredApp, ctx: ApplyContext): Promise<HelmTestReport> {
    const t = await this.ready(app.env);
    if (!t.helmTests) throw new TerminalError(`environment ${app.env} runs on the ${t.name} target, which has no Helm charts to test`);
    return t.helmTests(app, ctx);
  }

  async runOnce(env: string, app: string, argv: string[], io: { sink: RunSink; signal?: AbortSignal; timeoutMs?: number }): Promise<RunResult> {
    const t = await this.ready(env);
    if (!t.runOnce) throw new Error(`environment ${env} runs on the ${t.name} target, which cannot run one-off commands`);
    return t.runOnce(env, app, argv, io);
  }
}
