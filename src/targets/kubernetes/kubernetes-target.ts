/**
 * The Kubernetes target: one environment's apps as objects in a cluster. Server-side apply (field manager
 * `keelson`) of what differs, inventory-based prune, health per kind, automatic rollback to the previous
 * revision's objects, drift healed from watch events, Argo CD waves and hooks.
 *
 * Beside it: the record of what each app applied (inventory.ts, with the pending marker of an unfinished sync),
 * rollout checkpoints (checkpoints.ts), blue/green and canary (progressive.ts), how hooks run (hook-runner.ts), health
 * waits (wait-healthy.ts), drift healing (drift-heal.ts), what an app applies before anything is sent (prepare.ts),
 * namespaces (namespaces.ts), `keelson run` as a Job (run-once.ts) and inventories recovered from live (adopt.ts).
 */
import { killPoint } from '../../core/kill-points.js';
import type { DesiredApp, IgnoreDifference, KubernetesTargetSpec } from '../../core/model.js';
import { errorMessage, TerminalError } from '../../core/errors.js';
import type { EventBus } from '../../core/events.js';
import type { Logger } from '../../log.js';
import type { ApplyContext, ApplyOutcome, HookExecRequest, LiveApp, ObjectDiff, ObjectOutcome, Target } from '../target.js';
import { applyObject, type ApplyOptions, type ObjectResult } from './apply.js';
import { apiMessage, connect, isNotFound, isTransient, type Cluster } from './client.js';
import { leftExtraneous, pruneObjects, staleObjects, type Extraneous } from './delete.js';
import { diffObject } from './diff.js';
import { combinedHealth, objectHealth } from './health/index.js';
import { runHookPhase, splitHooks, syncWaves, type HookRunner } from './hooks.js';
import { InventoryStore, type AppInventory, type KvStore, type PendingSync } from './inventory.js';
import { adoptedMessage, labelledObjectsOf, recoverInventory } from './adopt.js';
import { RolloutCheckpoints } from './checkpoints.js';
import { DriftHealer, type Owner } from './drift-heal.js';
export { healDelayMs } from './drift-heal.js';
import { ANNOTATION_APPLIED, formatKey, groupOf, hashOf, identity, ignoresExtraneous, matchesDesired, type KObject } from './objects.js';
import { rankGroups } from './order.js';
import { apiWrites } from './limit.js';
import { hookRunner } from './hook-runner.js';
import { waitHealthy } from './wait-healthy.js';
import { runHelmTests, type HelmTestReport } from './helm-tests.js';
import { kubernetesRollout, progressivePlan, scaleBackFailed, setOf, type ProgressivePlan, type SavedRollout } from './progressive.js';
import { hookJob } from './hook-job.js';
import type { RunResult, RunSink } from '../../run/one-off.js';
import { ObjectWatch, type WatchEvent } from './watch.js';
import { Namespaces } from './namespaces.js';
import { prepareApp, type Prepared } from './prepare.js';
import { runOnce } from './run-once.js';
import { comparable, rulesFor } from './ignore.js';

export interface KubernetesTargetOptions {
  env: string;
  spec: KubernetesTargetSpec['kubernetes'];
  store: KvStore;
  bus: EventBus;
  log: Logger;
  /** Asks the engine to reconcile the environment (a heal that could not be done here). */
  requeue: (env: string) => void;
  /** Where remote Helm charts and resolved chart dependencies are cached (`<state>/charts`). */
  chartCacheDir?: string;
  /**
   * Whether this engine may write to the environment now (it holds the environment's claim, src/claims): drift is
   * healed here only then; another engine holding the claim heals it. Absent: always.
   */
  mayWrite?: (env: string) => boolean;
  /**
   * A value that changes each time this engine starts holding the environment's claim (the claim's signal): the
   * records of what each app applied are checked against the live objects once per hold (adopt.ts), since another
   * engine may have run the environment meanwhile. Absent: once per target (a new state directory).
   */
  holdOf?: (env: string) => unknown;
  /** Objects applied to the server at once. Default 16. */
  concurrency?: number;
  /**
   * Apps the engine applies at once. Default 256: an app's apply mostly waits for its rollout, and what it costs is
   * bounded elsewhere (writes by `apiWrites`, renderer processes by `renders`). With 64, a cold sync of 100 apps per
   * environment stalled: 64 apps waited for their rollouts while the cluster had CPU to spare (1,000 apps in 10
   * environments: every Deployment Available in 49.3 s at 64, 38.8 s at 256).
   */
  appConcurrency?: number;
}

export class KubernetesTarget implements Target {
  readonly name = 'kubernetes';
  private cluster?: Cluster;
  private watch?: ObjectWatch;
  private readonly inventory: InventoryStore;
  private readonly checkpoints: RolloutCheckpoints;
  private ready?: Promise<void>;
  /** Apps being applied: their objects change on purpose, so drift is not healed meanwhile. */
  private readonly applying = new Set<string>();
  /** Live object identity → the app and desired object Keelson applied. */
  private owners = new Map<string, Owner>();
  private readonly drift: DriftHealer;
  private readonly namespaces: Namespaces;

  constructor(private readonly o: KubernetesTargetOptions) {
    this.namespaces = new Namespaces(o.spec.namespace, o.log);
    this.inventory = new InventoryStore(o.store);
    this.checkpoints = new RolloutCheckpoints(o.store);
    this.drift = new DriftHealer({
      env: o.env,
      bus: o.bus,
      log: o.log,
      requeue: o.requeue,
      ownerOf: (id) => this.owners.get(id),
      // An interrupted rollout owns both sets' replica counts until the next apply resumes or aborts it.
      leftAlone: (app) => this.applying.has(app) || this.checkpoints.get(o.env, app) !== undefined,
      api: () => this.cluster!.api,
      live: (obj) => this.watch?.get(obj),
      // Under a new hold, records may be outdated (another engine ran the environment): healed from only once checked.
      mayWrite: () => o.mayWrite?.(o.env) !== false && this.recoveredNow(),
    });
  }

  get namespace(): string {
    return this.o.spec.namespace;
  }

  start(): Promise<void> {
    this.ready ??= this.connectAndWatch();
    return this.ready;
  }

  private async connectAndWatch(): Promise<void> {
    const cluster = connect(this.o.spec);
    // Objects with ignoreDifferences rules keep their managedFields in the cache: who owns a field decides.
    const keepManagedFields = (o: KObject) => {
      const owner = this.owners.get(identity(o));
      return owner?.ignore !== undefined && rulesFor(o, owner.ignore).length > 0;
    };
    const watch = new ObjectWatch({ api: cluster.api, env: this.o.env, log: this.o.log, keepManagedFields });
    this.cluster = cluster;
    this.watch = watch;
    watch.onChange((type, obj) => this.onWatchEvent(type, obj));
    this.reindex();
    const kinds = new Map<string, KObject>();
    for (const inv of this.inventory.list(this.o.env)) for (const obj of [...inv.objects, ...(inv.extraneous ?? []).map((e) => e.object)]) kinds.set(`${obj.apiVersion}/${obj.kind}`, obj);
    try {
      await Promise.all([...kinds.values()].map((k) => watch.ensure(k.apiVersion, k.kind)));
    } catch (err) {
      // The next call starts over: the watches that did start, and this hold on the shared client, end here.
      await watch.close();
      cluster.release();
      if (this.watch === watch) this.watch = undefined;
      if (this.cluster === cluster) this.cluster = undefined;
      throw err;
    }
    // Drift while nobody watched (engine down): check every object once now.
    for (const { desired } of this.owners.values()) this.drift.check(desired, watch.get(desired));
  }

  private async connected(): Promise<{ cluster: Cluster; watch: ObjectWatch }> {
    if (!this.ready) this.ready = this.connectAndWatch();
    try {
      await this.ready;
    } catch (err) {
      this.ready = undefined; // retried by the next call
      throw err;
    }
    return { cluster: this.cluster!, watch: this.watch! };
  }

  async close(): Promise<void> {
    this.drift.close();
    await this.watch?.close();
    this.cluster?.release();
  }

  concurrencyOf(): number {
    return this.o.appConcurrency ?? 256;
  }

  templateOf(app: DesiredApp): string {
    const { source: _s, env: _e, dependsOn: _d, ...rest } = app;
    return hashOf({ ...rest, namespace: this.namespace });
  }

  /** Live objects are replaced, never changed, by the watch: whether one matches its desired object is kept per live object. */
  private readonly intactOf = new WeakMap<KObject, { desired: KObject; intact: boolean }>();

  private intact(desired: KObject, live: KObject | undefined, ignore: IgnoreDifference[] | undefined): boolean {
    if (!live) return false;
    const known = this.intactOf.get(live);
    if (known?.desired === desired) return known.intact;
    const intact = matchesDesired(comparable(desired, live, ignore), live);
    this.intactOf.set(live, { desired, intact });
    return intact;
  }

  private recovery?: { hold: unknown; done: Promise<void>; finished?: boolean };

  /** Whether the records were checked against live under the current hold (always without claims). */
  private recoveredNow(): boolean {
    if (!this.o.holdOf) return true;
    return this.recovery?.finished === true && this.recovery.hold === this.o.holdOf(this.o.env);
  }

  /**
   * The records checked against the live objects once per hold of the environment (adopt.ts); only while this engine
   * may write to it (a standby's records wait until it takes the environment).
   */
  private recovered(): Promise<void> {
    const env = this.o.env;
    if (this.o.mayWrite?.(env) === false) return Promise.resolve();
    const hold = this.o.holdOf?.(env) ?? true;
    if (this.recovery?.hold === hold) return this.recovery.done;
    const done = this.recover().catch((err) => {
      if (this.recovery?.done === done) this.recovery = undefined; // the next observe tries again
      throw err;
    });
    const recovery: { hold: unknown; done: Promise<void>; finished?: boolean } = { hold, done };
    this.recovery = recovery;
    void done.then(
      () => {
        recovery.finished = true;
        // Drift while the records were not checked (or outdated) is looked at now, against the checked ones.
        const watch = this.watch;
        if (watch) for (const { desired } of this.owners.values()) this.drift.check(desired, watch.get(desired));
      },
      () => undefined,
    );
    return done;
  }

  private async recover(): Promise<void> {
    const { cluster, watch } = await this.connected();
    const env = this.o.env;
    const started = performance.now();
    const live = await labelledObjectsOf(cluster.api, env);
    // Expected where RBAC is narrowed to the kinds the ops repository uses (Keelson cannot have applied the others).
    if (live.refused.length) this.o.log.debug({ env, kinds: live.refused.join(', ') }, 'kinds not listable (RBAC): objects of them are not recovered into the inventory');
    const r = recoverInventory(env, this.inventory.list(env), live.objects, new Date());
    for (const app of r.dropped) this.inventory.delete(env, app);
    for (const inv of r.adopted) this.inventory.put(inv);
    if (r.adopted.length || r.dropped.length) this.reindex();
    await Promise.all(uniqueKinds(r.adopted.flatMap((i) => i.objects)).map((k) => watch.ensure(k.apiVersion, k.kind)));
    const fields = { env, kept: r.kept.length, adopted: r.adopted.map((i) => i.app).join(', ') || undefined, dropped: r.dropped.join(', ') || undefined, requests: live.requests, ms: Math.round(performance.now() - started) };
    if (r.adopted.length || r.dropped.length) this.o.log.info(fields, 'inventory recovered from the live objects labelled for the environment');
    else this.o.log.debug(fields, 'inventory matches the live objects');
  }

  /**
   * Each record's last observation, with the live objects it was made from (the watch replaces objects, never changes
   * them): reused while none of them was replaced. Status is read many times a second while a thousand apps sync
   * (health events, the status mirror, the API); only the apps whose objects changed are looked at again.
   */
  private readonly observed = new WeakMap<AppInventory, { ids: string[]; lives: (KObject | undefined)[]; app: LiveApp }>();

  async observe(env: string): Promise<LiveApp[]> {
    const { watch } = await this.connected();
    await this.recovered();
    return this.inventory.list(env).map((inv) => {
      const memo = this.observed.get(inv);
      const ids = memo?.ids ?? [...inv.objects, ...(inv.extraneous ?? []).map((e) => e.object)].map((o) => identity(o));
      const lives = ids.map((id) => watch.getById(id));
      if (memo && lives.every((l, i) => l === memo.lives[i])) return memo.app;
      const app = this.observeApp(inv, watch);
      this.observed.set(inv, { ids, lives, app });
      return app;
    });
  }

  /** What observe reports of one app: a function of its record and the live objects it names. */
  private observeApp(inv: AppInventory, watch: ObjectWatch): LiveApp {
    const objects = inv.objects.map((d) => {
      const live = watch.get(d);
      return { key: formatKey(d), ...objectHealth(d.kind, live as never), intact: this.intact(d, live, inv.spec.ignoreDifferences) };
    });
    const { health, message } = combinedHealth(objects);
    const replicas = { desired: 0, ready: 0, total: 0, updated: 0 };
    for (const d of inv.objects) {
      if (d.kind !== 'Deployment' && d.kind !== 'StatefulSet') continue;
      const live = watch.get(d) as { spec?: any; status?: any } | undefined;
      replicas.desired += live?.spec?.replicas ?? 0;
      replicas.ready += live?.status?.readyReplicas ?? 0;
      replicas.total += live?.status?.replicas ?? 0;
      replicas.updated += live?.status?.updatedReplicas ?? 0;
    }
    const outOfSync = this.extraneousMessage(inv, watch);
    return {
      ...(inv.pending ? { unfinishedSync: unfinishedMessage(inv.pending) } : {}),
      ...(inv.adopted ? { adopted: adoptedMessage(inv) } : {}),
      ...(outOfSync ? { outOfSync: outOfSync.message, ...(outOfSync.pendingPrune.length ? { pendingPrune: outOfSync.pendingPrune } : {}) } : {}),
      name: inv.app,
      spec: inv.spec,
      template: inv.template,
      version: inv.version,
      revision: inv.revision,
      health,
      message,
      replicas,
      instances: objects,
      objects: objects.map(({ key, health: h, message: m }) => ({ key, health: h, message: m })),
      intact: objects.every((x) => x.intact),
    };
  }

  /**
   * Why an app is OutOfSync although nothing it declares differs: objects no longer declared but still live, kept by
   * `Prune=false` or waiting for prune confirmation. One annotated `argocd.argoproj.io/compare-options:
   * IgnoreExtraneous` does not count (as in Argo CD, this only changes the sync status).
   */
  private extraneousMessage(inv: AppInventory, watch: ObjectWatch): { message: string; pendingPrune: string[] } | undefined {
    const live = (inv.extraneous ?? []).map((e) => ({ ...e, live: watch.get(e.object) })).filter((e) => e.live);
    const pendingPrune = live.filter((e) => e.why === 'Prune=confirm').map((e) => formatKey(e.object));
    const counted = live.filter((e) => !ignoresExtraneous(e.live));
    if (!counted.length && !pendingPrune.length) return undefined;
    const parts: string[] = [];
    const waiting = counted.filter((e) => e.why === 'Prune=confirm').map((e) => formatKey(e.object));
    const kept = counted.filter((e) => e.why === 'Prune=false').map((e) => formatKey(e.object));
    if (waiting.length) parts.push(`waiting for prune confirmation: ${waiting.join(', ')}; run \`keelson sync --env ${inv.env} --app ${inv.app} --confirm-prune\` to delete ${waiting.length > 1 ? 'them' : 'it'}`);
    if (kept.length) parts.push(`no longer declared, kept by Prune=false: ${kept.join(', ')} (annotate argocd.argoproj.io/compare-options: IgnoreExtraneous to leave ${kept.length > 1 ? 'them' : 'it'} out of the sync status)`);
    return parts.length ? { message: parts.join('; '), pendingPrune } : { message: '', pendingPrune };
  }

  logs(): { replica: string; path: string }[] {
    return [];
  }

  /** `keelson run`: a Job from the app's live pod template (run-once.ts). */
  async runOnce(env: string, appName: string, argv: string[], io: { sink: RunSink; signal?: AbortSignal; timeoutMs?: number }): Promise<RunResult> {
    const { cluster, watch } = await this.connected();
    return runOnce({ cluster, watch, log: this.o.log, namespace: this.namespace, deployed: this.inventory.get(env, appName) }, env, appName, argv, io);
  }

  /** What an app applies, its hooks apart (prepare.ts); install when the app has no inventory record here. */
  private async prepare(app: DesiredApp, checkoutDir: string): Promise<Prepared> {
    const { cluster } = await this.connected();
    return prepareApp(app, checkoutDir, {
      cluster,
      install: !this.inventory.get(app.env, app.name),
      env: this.o.env,
      namespace: this.namespace,
      spec: this.o.spec,
      chartCacheDir: this.o.chartCacheDir,
      ownerOf: (id) => this.owners.get(id),
    });
  }

  async apply(app: DesiredApp, ctx: ApplyContext): Promise<ApplyOutcome> {
    const fail = (message: string, objects: ObjectOutcome[] = [], transient = false): ApplyOutcome => ({ ok: false, message, rolledBack: false, logTail: [], objects, ...(transient ? { transient } : {}) });
    let prepared: Awaited<ReturnType<KubernetesTarget['prepare']>>;
    let cluster: Cluster;
    let watch: ObjectWatch;
    try {
      ({ cluster, watch } = await this.connected());
      prepared = await this.prepare(app, ctx.checkoutDir);
      await this.namespaces.ensure(cluster, this.namespace);
      await this.namespaces.foreign(cluster, app, [...prepared.resources, ...Object.values(prepared.hooks).flat()]);
    } catch (err) {
      return fail(`${app.name}: ${errorMessage(err)}`, [], isTransient(err));
    }
    const { resources, hooks } = prepared;
    // What a failure rolls back to: the last record, unless it holds these very objects (a retry of a failed first
    // deploy, or a re-apply): rolling back to them would only claim a rollback that changed nothing.
    const stored = this.inventory.get(app.env, app.name);
    // A record adopted from the live objects (adopt.ts) is what to prune, never what to roll back to.
    const adopted = stored?.adopted ? stored : undefined;
    const recorded = adopted ? undefined : stored;
    const settled = adopted && this.settle(adopted, app, prepared, ctx, watch);
    if (settled) return settled;
    const same = !!recorded && sameObjects(recorded.objects, resources);
    // A sync of these very objects that an engine stop left unfinished before its PostSync hooks (see
    // AppInventory.pending) is finished with the record before it as what a failure rolls back to. One that finished
    // here and was only not recorded by the engine is synced again as it is (its hooks run again, as in a re-sync).
    const previous = !recorded ? undefined : !same ? withoutPending(recorded) : recorded.pending?.phase === 'hooks' ? recorded.pending.previous : undefined;
    this.applying.add(app.name);
    let recordedNew = false;
    // This app's place in the queue of writes: its writes go before those of apps that started later (limit.ts).
    const ticket = apiWrites.ticket();
    try {
      const timeoutMs = (app.progressDeadlineSeconds + 15) * 1000;
      const runner = hookRunner(cluster, watch);
      const results: ObjectResult[] = [];
      const pre = await runHookPhase('PreSync', hooks.PreSync, runner, timeoutMs);
      results.push(...pre.results);
      if (!pre.ok) {
        const sf = await runHookPhase('SyncFail', hooks.SyncFail, runner, timeoutMs);
        return fail(pre.message, [...results, ...sf.results]);
      }
      const plan = progressivePlan(app, resources, previous?.objects, watch);
      if (plan && previous) return await this.progressive(cluster, watch, app, ctx, plan, previous, results, { hooks, runner, timeoutMs, preDelete: prepared.preDelete, tests: prepared.tests, ticket });
      // No rollout runs: a checkpoint left by an interrupted one (reverted, now rolling…) no longer applies.
      this.checkpoints.clear(app.env, app.name);
      // Argo CD's order: wave by wave, each wave's objects then its Sync hooks, each wave healthy before the next.
      const waves = syncWaves(resources, hooks.Sync);
      let failure: string | undefined;
      for (const [i, wave] of waves.entries()) {
        const applied = await this.applyAll(cluster, watch, wave.objects, { force: ctx.force ?? false, ...applyRules(app), ticket });
        results.push(...applied);
        const failed = applied.filter((r) => r.action === 'failed');
        if (failed.length) {
          failure = failed.map((f) => f.message).join('; ');
          break;
        }
        const sync = await runHookPhase('Sync', wave.hooks, runner, timeoutMs);
        results.push(...sync.results);
        if (!sync.ok) {
          failure = sync.message;
          break;
        }
        if (i < waves.length - 1 && wave.objects.length) {
          const h = await waitHealthy(watch, wave.objects, timeoutMs);
          if (h.health !== 'Healthy') {
            failure = `wave ${wave.wave} did not become healthy: ${h.message}`;
            break;
          }
        }
      }
      const record: AppInventory = {
        env: app.env,
        app: app.name,
        revision: ctx.revision,
        version: app.version,
        template: this.templateOf(app),
        spec: app,
        objects: resources,
        appliedAt: new Date().toISOString(),
        ...(prepared.preDelete.length ? { preDelete: prepared.preDelete } : {}),
      };
      if (!failure) {
        killPoint('written');
        const pruned = await this.pruneStale(cluster, watch, app, previous ?? adopted, recorded, resources, ctx.confirmPrune ?? false);
        results.push(...pruned.results);
        if (pruned.extraneous) record.extraneous = pruned.extraneous;
        this.putInventory({ ...record, pending: { revision: ctx.revision, phase: 'hooks', ...(previous ? { previous } : {}) } });
        recordedNew = true;
        killPoint('recorded');
        const h = await waitHealthy(watch, resources, timeoutMs);
        if (h.health !== 'Healthy') failure = `${app.name} ${app.version} did not become healthy: ${h.message}`;
      }
      if (!failure) {
        const post = await runHookPhase('PostSync', hooks.PostSync, runner, timeoutMs);
        results.push(...post.results);
        if (!post.ok) failure = post.message;
      }
      if (!failure && app.helm?.tests === 'afterSync' && prepared.tests.length) {
        // The chart's tests as a post-sync check the App opted into: a failing one fails (and rolls back) the sync.
        const report = await this.helmTestsOf(cluster, watch, prepared.tests, timeoutMs);
        results.push(...helmTestResults(report));
        if (!report.ok) failure = report.message;
      }
      if (!failure) {
        this.putInventory({ ...record, pending: { revision: ctx.revision, phase: 'engine' } });
        killPoint('applied');
        const written = results.filter((r) => r.action !== 'unchanged');
        return { ok: true, action: stored ? 'configured' : 'created', message: withPruneNote(summarize(results, written.length === 0), results, app), objects: results };
      }
      const sf = await runHookPhase('SyncFail', hooks.SyncFail, runner, timeoutMs);
      results.push(...sf.results);
      if (!previous) {
        // A first deploy that failed stays recorded so it can be pruned; an adopted record keeps what it adopted too
        // (still to prune once a sync succeeds).
        this.putInventory(adopted ? withAdopted(adopted, resources) : record);
        return fail(failure, results);
      }
      const rollback = await this.rollback(cluster, watch, previous, resources, ticket);
      this.o.bus.publish({ type: 'app.rolledBack', env: app.env, app: app.name, revision: previous.revision, message: `${failure}; rolled back to ${previous.version}` });
      return { ok: false, message: `${failure}; rolled back to ${previous.version}${rollback ? ` (${rollback})` : ''}`, rolledBack: true, logTail: [], objects: results };
    } catch (err) {
      // Unreachable after the new objects were recorded (a PostSync hook's Job could not be created): forget the
      // record again, or the retry would find nothing to do and never run the hooks.
      if (recordedNew && isTransient(err)) {
        if (stored) this.putInventory(stored);
        else {
          this.inventory.delete(app.env, app.name);
          this.reindex();
        }
      }
      return fail(`${app.name}: ${errorMessage(err)}`, [], isTransient(err));
    } finally {
      this.applying.delete(app.name);
    }
  }

  async settleAdopted(app: DesiredApp, ctx: ApplyContext): Promise<ApplyOutcome | undefined> {
    if (this.inventory.get(app.env, app.name)?.adopted?.why !== 'no-record') return undefined; // spares the prepare
    try {
      const { watch } = await this.connected();
      const prepared = await this.prepare(app, ctx.checkoutDir);
      const adopted = this.inventory.get(app.env, app.name);
      return adopted && this.settle(adopted, app, prepared, ctx, watch);
    } catch {
      return undefined; // the apply reports it
    }
  }

  /**
   * Taken over with every object live as desired (same identities and applied hashes, each intact): recorded as this
   * sync's, with nothing written and no hook run (as for any app already in sync); undefined when anything differs.
   */
  private settle(adopted: AppInventory, app: DesiredApp, prepared: Prepared, ctx: ApplyContext, watch: ObjectWatch): ApplyOutcome | undefined {
    // Only an app this engine had no record of (taken over, a new state dir). One whose record here no longer matched
    // live is most often this engine's own sync cut short (killed after its objects were written, before they were
    // recorded): it is synced the whole way, hooks included, so that PostSync runs at least once.
    if (adopted.adopted?.why !== 'no-record') return undefined;
    const { resources } = prepared;
    if (!sameObjects(adopted.objects, resources) || !resources.every((o) => this.intact(o, watch.get(o), app.ignoreDifferences))) return undefined;
    this.putInventory({ env: app.env, app: app.name, revision: ctx.revision, version: app.version, template: this.templateOf(app), spec: app, objects: resources, appliedAt: new Date().toISOString(), ...(prepared.preDelete.length ? { preDelete: prepared.preDelete } : {}), pending: { revision: ctx.revision, phase: 'engine' } });
    return { ok: true, action: 'configured', message: `${resources.length} objects unchanged (adopted from the live objects)`, objects: resources.map((o) => ({ key: formatKey(o), action: 'unchanged' as const })) };
  }

  /**
   * Blue/green or canary through the target-neutral step machine (progressive.ts); an abort re-applies the stable
   * revision. Every step transition is checkpointed in the store: an engine that stops mid-rollout leaves both
   * Deployments as they are, and the next one resumes at the same step (analysis starts over).
   */
  private async progressive(
    cluster: Cluster,
    watch: ObjectWatch,
    app: DesiredApp,
    ctx: ApplyContext,
    plan: ProgressivePlan,
    recorded: AppInventory,
    before: ObjectResult[],
    h: { hooks: ReturnType<typeof splitHooks>['hooks']; runner: HookRunner; timeoutMs: number; preDelete: KObject[]; tests: KObject[]; ticket: number },
  ): Promise<ApplyOutcome> {
    // After a restart the record may hold more sets than the stable one: the new one (an interrupted rollout of this
    // very spec, resumed below) and others (a rollout superseded while the engine was stopped, aborted here).
    const others = recorded.objects.filter((o) => o.kind === 'Deployment' && setOf(o) && identity(o) !== identity(plan.stable) && identity(o) !== identity(plan.next));
    const previous: AppInventory = { ...recorded, objects: recorded.objects.filter((o) => identity(o) !== identity(plan.next) && !others.includes(o)) };
    const template = this.templateOf(app);
    const stored = this.checkpoints.get(app.env, app.name);
    const saved = stored?.template === template ? stored : undefined;
    const save = (s: SavedRollout) => this.checkpoints.save({ env: app.env, app: app.name, template, strategy: app.rollout?.strategy, revision: ctx.revision, ...s });
    const rollBack = async (message: string, objects: ObjectResult[]): Promise<ApplyOutcome> => {
      // Never below the stable set's capacity: it is back to its size and ready before the new set goes. If it cannot
      // be (a refused write, pods that do not start), the new set keeps serving and the abort is finished by a retry.
      const why = await this.stableBack(cluster, watch, previous, h.timeoutMs, h.ticket);
      if (why) {
        const last = this.checkpoints.get(app.env, app.name);
        const checkpoint = { ...(last?.checkpoint ?? { step: 0, weight: 0, full: false }), aborting: last?.checkpoint.aborting ?? message };
        this.checkpoints.save({ env: app.env, app: app.name, template, strategy: app.rollout?.strategy, revision: ctx.revision, plan: last?.plan ?? '', checkpoint });
        const reason = `${message}; ${scaleBackFailed(plan, app.manifests ? ((plan.stable as any).spec?.replicas ?? 1) : app.replicas)}: ${why}`;
        this.o.log.warn({ env: app.env, app: app.name, err: why }, 'rollout abort waits for the stable set');
        return { ok: false, message: reason, rolledBack: false, logTail: [], objects, transient: true };
      }
      this.checkpoints.clear(app.env, app.name);
      objects.push(...(await runHookPhase('SyncFail', h.hooks.SyncFail, h.runner, h.timeoutMs)).results);
      const back = await this.rollback(cluster, watch, previous, [plan.next, ...plan.others], h.ticket);
      return { ok: false, message: `${message}${back ? ` (${back})` : ''}`, rolledBack: true, logTail: [], objects };
    };
    if (saved?.checkpoint.aborting) {
      // The engine stopped while aborting this rollout: finish the abort, never resume it.
      this.o.bus.publish({ type: 'rollout.aborted', env: app.env, app: app.name, revision: ctx.revision, reason: saved.checkpoint.aborting });
      return rollBack(saved.checkpoint.aborting, before);
    }
    for (const stray of others) {
      await cluster.api.delete(stray, 'Background').catch((err) => {
        if (!isNotFound(err)) throw err;
      });
      this.o.bus.publish({ type: 'rollout.aborted', env: app.env, app: app.name, revision: recorded.revision, reason: `superseded by revision ${ctx.revision.slice(0, 7)} while the engine was stopped` });
    }
    const deps = {
      cluster,
      watch,
      bus: this.o.bus,
      applyAll: (objs: KObject[]) => this.applyAll(cluster, watch, objs, { force: true, ...applyRules(app), ticket: h.ticket }),
      remove: (o: KObject) => cluster.api.delete(o, 'Background').then(() => undefined, (err) => { if (!isNotFound(err)) throw err; }),
    };
    const record = (objects: KObject[]) => this.putInventory({ ...previous, objects });
    let r: Awaited<ReturnType<typeof kubernetesRollout>>;
    try {
      r = await kubernetesRollout(deps, app, plan, { revision: ctx.revision, fromVersion: previous.version, signal: ctx.signal, record, interrupt: ctx.interrupt, saved, save });
    } catch (err) {
      // Unreachable before the first step: nothing moved yet; the retry starts it.
      if (isTransient(err)) return { ok: false, message: `${app.name}: ${errorMessage(err)}`, rolledBack: false, logTail: [], objects: before, transient: true };
      return rollBack(`${app.name}: ${errorMessage(err)}; rolled back to ${previous.version}`, before);
    }
    const results = [...before, ...r.results];
    if ('interrupted' in r.outcome && r.outcome.interrupted) {
      // Stopped where it was (both sets kept, the checkpoint too): by the engine stopping, or the API unreachable.
      return { ok: false, message: r.outcome.message, rolledBack: false, logTail: [], objects: results, ...(r.outcome.transient ? { transient: true } : { interrupted: true }) };
    }
    this.checkpoints.clear(app.env, app.name);
    if (!r.outcome.ok) return rollBack(r.outcome.message, results);
    // Argo CD's hooks keep their meaning: the rollout is the sync, so Sync hooks run once it completed and PostSync
    // after them; a failure of either rolls back to the previous revision (as after a plain apply).
    let failure: string | undefined;
    let done = () => undefined as void;
    try {
      const sync = await runHookPhase('Sync', h.hooks.Sync, h.runner, h.timeoutMs);
      results.push(...sync.results);
      failure = sync.ok ? undefined : sync.message;
      if (!failure) {
        const pruned = await this.pruneStale(cluster, watch, app, previous, recorded, r.objects, ctx.confirmPrune ?? false);
        results.push(...pruned.results);
        const record: AppInventory = { env: app.env, app: app.name, revision: ctx.revision, version: app.version, template: this.templateOf(app), spec: app, objects: r.objects, appliedAt: new Date().toISOString(), ...(pruned.extraneous ? { extraneous: pruned.extraneous } : {}), ...(h.preDelete.length ? { preDelete: h.preDelete } : {}) };
        this.putInventory({ ...record, pending: { revision: ctx.revision, phase: 'hooks', previous } });
        killPoint('recorded');
        done = () => this.putInventory({ ...record, pending: { revision: ctx.revision, phase: 'engine' } });
        const post = await runHookPhase('PostSync', h.hooks.PostSync, h.runner, h.timeoutMs);
        results.push(...post.results);
        if (!post.ok) failure = post.message;
        if (!failure && app.helm?.tests === 'afterSync' && h.tests.length) {
          const report = await this.helmTestsOf(cluster, watch, h.tests, h.timeoutMs);
          results.push(...helmTestResults(report));
          if (!report.ok) failure = report.message;
        }
      }
    } catch (err) {
      if (!isTransient(err)) throw err;
      // A hook's Job could not be created: the retry applies the (now live) new set again and runs the hooks.
      this.putInventory(recorded);
      return { ok: false, message: `${app.name}: ${errorMessage(err)}`, rolledBack: false, logTail: [], objects: results, transient: true };
    }
    if (!failure) {
      done();
      killPoint('applied');
      return { ok: true, action: 'configured', message: withPruneNote(r.outcome.message, results, app), objects: results };
    }
    // The stable set is gone after a promotion: rollBack brings it back and waits until it is ready before the Service
    // returns to it and the new set goes.
    this.o.bus.publish({ type: 'app.rolledBack', env: app.env, app: app.name, revision: previous.revision, message: `${failure}; rolled back to ${previous.version}` });
    return rollBack(`${failure}; rolled back to ${previous.version}`, results);
  }

  /**
   * The stable set(s) of a progressive app back to their recorded size and ready (a canary abort, a rollback after a
   * promotion); why not, when they are not: the new set must keep serving then.
   */
  private async stableBack(cluster: Cluster, watch: ObjectWatch, previous: AppInventory, timeoutMs: number, ticket?: number): Promise<string | undefined> {
    const sets = previous.objects.filter((o) => o.kind === 'Deployment');
    if (!sets.length) return undefined;
    try {
      const failed = (await this.applyAll(cluster, watch, sets, { force: true, ...applyRules(previous.spec), ticket })).filter((r) => r.action === 'failed');
      if (failed.length) return failed.map((f) => f.message).join('; ');
    } catch (err) {
      return apiMessage(err);
    }
    const ready = await waitHealthy(watch, sets, timeoutMs);
    return ready.health === 'Healthy' ? undefined : ready.message;
  }

  /** A deploy hook's `exec` step as a Job (hook-job.ts): from the template being deployed when given, else the live app's. */
  async hookExec(r: HookExecRequest): Promise<{ ok: boolean; message: string; output: string }> {
    const { cluster, watch } = await this.connected();
    await this.namespaces.ensure(cluster, this.namespace);
    let objects: KObject[];
    if (r.spec && r.checkoutDir) objects = (await this.prepare(r.spec, r.checkoutDir)).resources;
    else objects = (this.inventory.get(r.env, r.app)?.objects ?? []).map((o) => watch.get(o) ?? o);
    return hookJob({ cluster, watch, namespace: this.namespace, objects }, r);
  }

  /**
   * `keelson test`: the chart's test hooks of the app as deployed here (rendered from `app`, the running revision),
   * run against the live release; each with its pod's log.
   */
  async helmTests(app: DesiredApp, ctx: ApplyContext): Promise<HelmTestReport> {
    const { cluster, watch } = await this.connected();
    if (!this.inventory.get(app.env, app.name)) throw new TerminalError(`app "${app.name}" is not deployed in environment "${app.env}"; its tests run against the deployed release (sync it first)`);
    const { tests } = await this.prepare(app, ctx.checkoutDir);
    return this.helmTestsOf(cluster, watch, tests, (app.progressDeadlineSeconds + 15) * 1000);
  }

  private helmTestsOf(cluster: Cluster, watch: ObjectWatch, tests: KObject[], timeoutMs: number): Promise<HelmTestReport> {
    const logOf = async (t: KObject): Promise<string | undefined> => {
      const ns = t.metadata.namespace ?? this.namespace;
      const pods = t.kind === 'Pod' ? [watch.get(t) ?? t] : t.kind === 'Job' ? await cluster.api.list('v1', 'Pod', { namespace: ns, labelSelector: `batch.kubernetes.io/job-name=${t.metadata.name}` }) : [];
      const pod = pods[0] as { metadata: { name: string }; spec?: { containers?: { name: string }[] } } | undefined;
      const container = pod?.spec?.containers?.[0]?.name;
      if (!pod || !container) return undefined;
      return cluster.api.podLog(ns, pod.metadata.name, container).catch((err) => `(the log of pod ${ns}/${pod.metadata.name} is not available: ${apiMessage(err)})`);
    };
    return runHelmTests(tests, hookRunner(cluster, watch), logOf, timeoutMs);
  }

  /**
   * Prunes what the last record applied and `objects` no longer declare, and the extraneous objects it still kept
   * (a confirmed prune deletes those waiting for confirmation); returns what stays extraneous.
   */
  private async pruneStale(cluster: Cluster, watch: ObjectWatch, app: DesiredApp, previous: AppInventory | undefined, recorded: AppInventory | undefined, objects: KObject[], confirmed: boolean): Promise<{ results: ObjectResult[]; extraneous?: Extraneous[] }> {
    const liveOf = (o: KObject) => watch.get(o);
    const carried = (recorded?.extraneous ?? []).map((e) => e.object).filter((o) => liveOf(o));
    const stale = staleObjects([...(previous?.objects ?? []), ...carried], objects);
    const opts = { syncOptions: app.syncOptions, confirmed };
    const results = await pruneObjects(cluster.api, stale, liveOf, { env: app.env, app: app.name }, opts);
    const extraneous = leftExtraneous(stale, liveOf, opts);
    return { results, ...(extraneous.length ? { extraneous } : {}) };
  }

  /** Re-applies the previous revision's objects and prunes what the failed one added. */
  private async rollback(cluster: Cluster, watch: ObjectWatch, previous: AppInventory, failed: KObject[], ticket?: number): Promise<string | undefined> {
    // Secrets loaded from the store have no values (never stored): the current ones stay.
    const redacted = new Set(previous.redacted ?? []);
    const applied = await this.applyAll(cluster, watch, previous.objects.filter((o) => !redacted.has(identity(o))), { force: true, ...applyRules(previous.spec), ticket });
    const stale = staleObjects(failed, previous.objects);
    const opts = { syncOptions: previous.spec.syncOptions };
    const pruned = await pruneObjects(cluster.api, stale, (o) => watch.get(o), { env: previous.env, app: previous.app }, opts);
    // What the failed revision added and Prune=false or Prune=confirm keeps stays in the record, so status shows it.
    const left = leftExtraneous(stale, (o) => watch.get(o), opts);
    this.putInventory(left.length ? { ...previous, extraneous: [...(previous.extraneous ?? []), ...left] } : previous);
    const problems = [...applied, ...pruned].filter((r) => r.action === 'failed');
    return problems.length ? problems.map((p) => p.message).join('; ') : undefined;
  }

  private async applyAll(cluster: Cluster, watch: ObjectWatch, objects: KObject[], opts: ApplyOptions): Promise<ObjectResult[]> {
    const results: ObjectResult[] = [];
    // The watches of every kind start at once (a list each), not one rank after the other; the kinds of CRDs applied
    // here wait for their rank below.
    const defined = new Set(objects.filter((o) => o.kind === 'CustomResourceDefinition').map((o) => (o as { spec?: { group?: string } }).spec?.group));
    for (const k of uniqueKinds(objects)) if (!defined.has(groupOf(k.apiVersion))) watch.ensure(k.apiVersion, k.kind).catch(() => undefined);
    for (const group of rankGroups(objects)) {
      // Per group: custom resources can only be watched once their CRD (an earlier group) is established.
      await Promise.all(uniqueKinds(group).map((k) => watch.ensure(k.apiVersion, k.kind).catch(() => undefined)));
      await mapLimit(group, this.o.concurrency ?? 16, async (o) => {
        const { result, live } = await applyObject(cluster.api, o, watch.get(o), opts);
        results.push(result);
        // Health must judge what was just written, not a cached copy the watch has not replaced yet.
        if (live && result.action !== 'unchanged') watch.saw(live);
        if (o.kind === 'CustomResourceDefinition' && result.action !== 'unchanged') cluster.api.forget(`${(o as any).spec?.group}/${(o as any).spec?.versions?.[0]?.name}`);
      });
      if (group[0]?.kind === 'CustomResourceDefinition') await waitHealthy(watch, group, 30_000);
    }
    return results;
  }

  /** Records what an app applied and updates the owner index for that app only (one app of thousands). */
  private putInventory(inv: AppInventory): void {
    const before = this.inventory.get(inv.env, inv.app);
    this.inventory.put(inv);
    for (const d of before?.objects ?? []) if (this.owners.get(identity(d))?.app === inv.app) this.owners.delete(identity(d));
    // Adopted records hold metadata only: drift of their objects is the next sync's business, never healed from them.
    if (!inv.adopted) for (const d of inv.objects) this.owners.set(identity(d), ownerOf(inv, d));
  }

  private reindex(): void {
    const owners = new Map<string, Owner>();
    for (const inv of this.inventory.list(this.o.env)) if (!inv.adopted) for (const d of inv.objects) owners.set(identity(d), ownerOf(inv, d));
    this.owners = owners;
  }

  async delete(env: string, app: string): Promise<void> {
    const { cluster, watch } = await this.connected();
    const inv = this.inventory.get(env, app);
    if (!inv) return;
    // Deleting on purpose: the watch must not heal these deletes.
    this.applying.add(app);
    try {
      if (inv.preDelete?.length) {
        // A Helm chart's pre-delete hooks run before its objects go; one that fails keeps them (and is retried).
        const pre = await runHookPhase('PreSync', inv.preDelete, hookRunner(cluster, watch), (inv.spec.progressDeadlineSeconds + 15) * 1000);
        if (!pre.ok) throw new Error(`pre-delete hook: ${pre.message.replace(/^PreSync hook /, '')}; the app's objects are kept`);
      }
      // Deleting the app deletes what waits for prune confirmation too (Argo CD's Prune=confirm is about pruning).
      const all = staleObjects([...inv.objects, ...(inv.extraneous ?? []).map((e) => e.object)], []);
      const results = await pruneObjects(cluster.api, all, (o) => watch.get(o), { env, app }, { syncOptions: inv.spec.syncOptions, confirmed: true });
      const failed = results.filter((r) => r.action === 'failed');
      if (failed.length) throw new Error(failed.map((f) => f.message).join('; '));
      this.inventory.delete(env, app);
      this.checkpoints.clear(env, app);
      this.reindex();
    } finally {
      this.applying.delete(app);
    }
  }

  /** The engine recorded the app's sync: the record's pending marker goes (see AppInventory.pending). */
  synced(env: string, app: string): void {
    const inv = this.inventory.get(env, app);
    if (inv?.pending?.phase === 'engine') this.putInventory(withoutPending(inv));
  }

  /** Server-side dry-run of every object against live, managed fields and defaults normalised away. */
  async diff(app: DesiredApp, ctx: ApplyContext): Promise<ObjectDiff[]> {
    const { cluster, watch } = await this.connected();
    const { resources } = await this.prepare(app, ctx.checkoutDir);
    await Promise.all(uniqueKinds(resources).map((k) => watch.ensure(k.apiVersion, k.kind).catch(() => undefined)));
    // At once (the write limit bounds the dry-runs in flight), in the order the app declares them.
    const out: ObjectDiff[] = await Promise.all(resources.map((o) => diffObject(cluster.api, o, watch.get(o), app.ignoreDifferences)));
    const previous = this.inventory.get(app.env, app.name);
    for (const stale of staleObjects(previous?.objects ?? [], resources)) out.push({ key: formatKey(stale), action: 'delete', changes: [] });
    return out;
  }

  // ---- drift -------------------------------------------------------------------------------------

  private onWatchEvent(type: WatchEvent, obj: KObject): void {
    const owner = this.owners.get(identity(obj));
    if (!owner) return;
    this.drift.check(owner.desired, type === 'delete' ? undefined : obj);
  }

}

/** An adopted record that also holds `objects` (as metadata, like the rest), for a later prune. */
function withAdopted(adopted: AppInventory, objects: KObject[]): AppInventory {
  const have = new Set(adopted.objects.map(identity));
  const more = objects.filter((o) => !have.has(identity(o))).map((o) => ({ apiVersion: o.apiVersion, kind: o.kind, metadata: { name: o.metadata.name, ...(o.metadata.namespace ? { namespace: o.metadata.namespace } : {}), labels: o.metadata.labels, annotations: o.metadata.annotations } }));
  return { ...adopted, objects: [...adopted.objects, ...more] };
}


/** A record as the sync that wrote it left it, finished. */
function withoutPending(inv: AppInventory): AppInventory {
  const { pending: _p, ...rest } = inv;
  return rest;
}

function unfinishedMessage(p: PendingSync): string {
  const rev = p.revision.slice(0, 7);
  return p.phase === 'hooks'
    ? `the sync of ${rev} stopped before its PostSync hooks ran (the engine stopped); the next sync finishes it`
    : `the sync of ${rev} finished here but the engine stopped before recording it; the next sync finishes it`;
}

/** A chart's test results among an apply's object results. */
function helmTestResults(report: HelmTestReport): ObjectResult[] {
  return report.tests.map((t) => ({ key: t.key, action: t.result === 'passed' ? 'created' : 'failed', message: `helm test ${t.message}` }));
}

function ownerOf(inv: AppInventory, desired: KObject): Owner {
  const o: Owner = { app: inv.app, desired };
  if (inv.spec.ignoreDifferences?.length) o.ignore = inv.spec.ignoreDifferences;
  if (inv.spec.syncOptions?.length) o.syncOptions = inv.spec.syncOptions;
  return o;
}

/** What an app's apply honours besides force: its ignoreDifferences and sync options. */
function applyRules(app: DesiredApp): Pick<ApplyOptions, 'ignore' | 'syncOptions'> {
  return { ignore: app.ignoreDifferences, syncOptions: app.syncOptions };
}

/** The sync's message names the objects whose prune waits for confirmation, and how to confirm. */
function withPruneNote(message: string, results: ObjectResult[], app: DesiredApp): string {
  const held = results.filter((r) => r.action === 'skipped' && r.message?.startsWith('waiting for prune confirmation')).map((r) => r.key);
  if (!held.length) return message;
  return `${message}; waiting for prune confirmation: ${held.join(', ')}; run \`keelson sync --env ${app.env} --app ${app.name} --confirm-prune\` to delete ${held.length > 1 ? 'them' : 'it'}`;
}

function summarize(results: ObjectResult[], unchanged: boolean): string {
  if (unchanged) return `${results.length} objects unchanged`;
  const counts = new Map<string, number>();
  for (const r of results) counts.set(r.action, (counts.get(r.action) ?? 0) + 1);
  return [...counts].map(([a, n]) => `${n} ${a}`).join(', ');
}

function uniqueKinds(objects: KObject[]): { apiVersion: string; kind: string }[] {
  const m = new Map<string, { apiVersion: string; kind: string }>();
  for (const o of objects) m.set(`${o.apiVersion}/${o.kind}`, { apiVersion: o.apiVersion, kind: o.kind });
  return [...m.values()];
}

async function mapLimit<T>(items: T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (i < items.length) await fn(items[i++]);
    }),
  );
}

/** Whether two object lists are the same objects as applied (identity and applied hash), in any order. */
function sameObjects(a: KObject[], b: KObject[]): boolean {
  const key = (o: KObject) => `${identity(o)}@${o.metadata.annotations?.[ANNOTATION_APPLIED] ?? ''}`;
  if (a.length !== b.length) return false;
  const keys = new Set(a.map(key));
  return b.every((o) => keys.has(key(o)));
}
