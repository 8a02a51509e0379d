import { join, relative } from 'node:path';
import type { DesiredApp, DesiredEnvironment, DesiredState, TargetSpec } from '../core/model.js';
import { targetName } from '../core/model.js';
import { errorMessage, TerminalError, TransientError } from '../core/errors.js';
import { appKey, formatIssue, type HealthCode, type Issue, type SyncCode } from '../core/types.js';
import type { Logger } from '../log.js';
import { formatPlan, hasChanges, planEnvironment, shownVersion, specKey, type Plan, type PlanStep } from '../plan/plan.js';
import { renderRepository } from '../render/index.js';
import { unrestrictedPolicy, type EnginePolicy } from '../policy/policy.js';
import { git } from '../source/git.js';
import { GitSource, type FetchResult } from '../source/git-source.js';
import type { AppChange, Store } from '../store/store.js';
import { hashDirectory } from '../source/content-digest.js';
import type { CertificateStatus, LiveApp, Target } from '../targets/target.js';
import type { HelmTestReport } from '../targets/kubernetes/helm-tests.js';
import { effectiveEnvironment, phaseOf, requeueBeforeExpiry, type EnvironmentPhase } from '../environments/expiry.js';
import { digestSecrets } from '../secrets/resolve.js';
import { SecretMask } from '../secrets/mask.js';
import type { RunResult, RunSink } from '../run/one-off.js';
import { runApp } from '../run/run-app.js';
import { EventBus } from '../core/events.js';
import { killPoint } from '../core/kill-points.js';
import { InflightApplies } from './inflight.js';
import { LatestWins } from './latest-wins.js';
import { ManualSyncs, type ManualRequest, type SyncOutcome } from './manual-syncs.js';
import { PauseSet } from './pause.js';
import { Reconciler } from './reconciler.js';
import { applyWithHooks, forgetHooks, runPreDelete, type SyncHookDeps } from '../hooks/around-apply.js';
import { WindowGate } from '../windows/gate.js';
import type { ClaimView } from '../claims/claim.js';
import type { ClaimKeeper } from '../claims/keeper.js';

export interface EngineOptions {
  repo: string;
  ref?: string;
  path?: string;
  /** Environments this engine runs; empty means all of them. */
  envs?: string[];
  stateDir: string;
  /** Git poll interval. Default 10 s. */
  pollMs?: number;
  /** Full resync of every environment (level-based safety net). Default: the poll interval. */
  resyncMs?: number;
  log: Logger;
  store: Store;
  bus: EventBus;
  target: Target;
  /**
   * Renders a checkout (default: `renderRepository`). A seam: tests wrap the real renderer to hold a revision back
   * while a newer one is fetched.
   */
  render?: typeof renderRepository;
  /** The operator's policy from the engine configuration (never git); default: none configured (unrestricted). */
  policy?: EnginePolicy;
  /**
   * Claims (src/claims): the engine reconciles an environment only while it holds its claim, and stands by while
   * another engine does. Absent: every environment is run without claiming it.
   */
  claims?: ClaimKeeper;
}

/** The last revision that rendered cleanly: what environments run. */
interface GoodRevision {
  revision: string;
  commit: { message: string; author: string; time: string };
  checkoutDir: string;
  desired: DesiredState;
}

interface RenderError {
  revision: string;
  issues: Issue[];
  message: string;
}

/** What `keelson diff --revision` answers: per environment, the plan the revision would make against live. */
export interface Preview {
  revision: string;
  commit: { message: string; author: string; time: string };
  /** The revision environments run now (null before one rendered cleanly). */
  base: string | null;
  /** Problems of the revision (render, secrets); when any, there are no plans. */
  issues: string[];
  environments: Plan[];
}

export interface AppStatusView {
  name: string;
  version: string | null;
  desiredVersion: string | null;
  revision: string | null;
  sync: SyncCode;
  health: HealthCode;
  message: string;
  replicas: { desired: number; ready: number; total: number; updated: number };
  instances: unknown[];
  /** Public port the proxy serves the app on, if any. */
  port?: number | null;
  /** HTTPS certificates of the app's hosts (local target), when it has any. */
  certificates?: CertificateStatus[];
}

export interface EnvironmentStatusView {
  name: string;
  target: string;
  revision: string | null;
  syncing: boolean;
  /** `Expired` once an on-demand environment's expiresAt has passed (its apps are stopped). */
  phase: EnvironmentPhase;
  expiresAt: string | null;
  /** Why syncs of this environment wait (a sync window), or null. */
  syncWindow: string | null;
  /** `keelson chaos` refuses to run here without --force. */
  protected?: boolean;
  /** Which engine runs this environment (engines with claims): `Active` here, or `Standby` and who holds it. */
  claim?: ClaimView | null;
  /** The environment is paused (`keelson pause`). */
  paused?: boolean;
  /** Set by the API when the entry is (or should have been) another engine's answer (README: "The API on every engine"). */
  peer?: { engine: string; url: string; error: string | null };
  error: { revision: string; message: string; issues: string[] } | null;
  apps: AppStatusView[];
}

export interface StatusView {
  revision: string | null;
  commit: { message: string; author: string; time: string } | null;
  source: { repo: string; ref: string | null; path: string; lastFetch: string | null; error: string | null };
  environments: EnvironmentStatusView[];
  /** This engine with claims (README "Sharding"): its identity, how many engines share the environments, and which are assigned to it. */
  engine?: { id: string; members: number; assigned: string[] };
}

// Apps of one dependency wave applied at once; a rollout mostly waits on readiness, so more than the cores.
const concurrency = 8;

/**
 * The GitOps engine: source → render → diff → plan → apply → health, one reconcile loop per environment.
 */
export class Engine {
  readonly bus: EventBus;
  readonly source: GitSource;
  private readonly store: Store;
  private readonly target: Target;
  private readonly log: Logger;
  private readonly reconciler: Reconciler;
  private readonly inflight = new InflightApplies();
  /** Paused environments and apps: reconcile skips them; status says Suspended. */
  readonly pauses: PauseSet;
  /** Sync windows: when an environment may sync, and why it waits. */
  readonly windows: WindowGate;
  /**
   * Every secret value decrypted so far, masked as `***` in all the engine outputs: events (on the bus, so history,
   * the event stream and notifications), sync and failure messages, status, and the log lines the API serves.
   */
  readonly secrets = new SecretMask();
  private good?: GoodRevision;
  private renderError?: RenderError;
  private latest?: FetchResult;
  private lastFetchAt?: string;
  private sourceError?: string;
  private pollTimer?: NodeJS.Timeout;
  /** Manual sync requests, merged per environment until a reconcile serves them. */
  private readonly manual = new ManualSyncs();
  /** Apps whose last apply could not reach the target, with why (status shows it until an apply gets through). */
  private readonly unreachable = new Map<string, string>();
  private stopped = false;
  /** Aborted by `stop`: progressive rollouts under way are left as they are, for the next engine to resume. */
  private readonly stopping = new AbortController();
  private goodUnpin?: () => void;
  /** Targets of environments only a previewed revision declares (`keelson diff --revision`), for observing them. */
  private readonly previewTargets = new Map<string, TargetSpec>();
  /** The revision each environment's unchanged apps were last recorded at. */
  private readonly recordedRevision = new Map<string, string>();
  /** Revisions load one at a time; while one loads, the newest fetched one waits (never an older one after it). */
  private readonly loads = new LatestWins<FetchResult>((fetched) => this.load(fetched));

  constructor(private readonly o: EngineOptions) {
    this.bus = o.bus;
    this.bus.redactWith((e) => this.secrets.maskDeep(e));
    this.store = o.store;
    this.target = o.target;
    this.log = o.log;
    this.source = new GitSource({ repo: o.repo, ref: o.ref, path: o.path, stateDir: o.stateDir, log: o.log });
    this.pauses = new PauseSet(o.store, o.bus);
    this.windows = new WindowGate(o.bus);
    this.reconciler = new Reconciler({
      reconcile: (env) => this.reconcileEnvironment(env),
      onError: (env, err, retryInMs) => this.log.error({ env, err: this.secrets.mask(errorMessage(err)), retryms: retryInMs }, 'reconcile failed'),
    });
  }

  get pollMs(): number {
    return this.o.pollMs ?? 10_000;
  }

  async start(): Promise<void> {
    await this.target.start();
    await this.source.init();
    await this.refresh();
    const poll = () => {
      this.pollTimer = setTimeout(async () => {
        await this.refresh();
        if (!this.stopped) poll();
      }, this.pollMs);
      this.pollTimer.unref();
    };
    poll();
  }

  /** Stops the loops; supervised apps and the proxy keep running for the next engine to adopt. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopping.abort();
    if (this.pollTimer) clearTimeout(this.pollTimer);
    await this.reconciler.stop();
    // After the last write: a standby takes over at once.
    await this.o.claims?.stop({ release: true });
    this.manual.cancelAll('the engine stopped before this sync ran; run it again');
    await this.target.close();
  }

  /** One fetch; a new revision is rendered and every environment reconciled. Never throws. */
  async refresh(): Promise<FetchResult | undefined> {
    let fetched: FetchResult;
    try {
      fetched = await this.source.fetch();
      this.sourceError = undefined;
      this.lastFetchAt = new Date().toISOString();
    } catch (err) {
      this.sourceError = errorMessage(err);
      this.bus.publish({ type: 'source.failed', message: this.sourceError });
      this.log.warn({ err: this.sourceError }, 'source fetch failed');
      return undefined;
    }
    this.bus.publish({ type: 'source.fetched', revision: fetched.revision, changed: fetched.changed, forced: fetched.forced, durationMs: fetched.durationMs });
    const isNew = fetched.revision !== this.latest?.revision;
    this.latest = fetched;
    // Webhook, poll, auto-updater and engine commits refresh concurrently: loads are serialized, newest wins, and
    // every caller returns once the revision it fetched (or a newer one) has been loaded.
    if (isNew || (!this.good && !this.renderError)) await this.loads.request(fetched);
    else await this.loads.settled();
    return fetched;
  }

  /** A fetched revision waiting for the revision being loaded now to finish loading. */
  get pendingRevision(): string | undefined {
    return this.loads.pending?.revision;
  }

  private async load(fetched: FetchResult): Promise<void> {
    const { revision } = fetched;
    let checkoutDir: string;
    try {
      checkoutDir = await this.source.checkout(revision);
    } catch (err) {
      this.sourceError = errorMessage(err);
      return;
    }
    const root = checkoutDir;
    const t0 = performance.now();
    const rendered = await (this.o.render ?? renderRepository)({ root, path: this.source.path || undefined, envs: this.o.envs?.length ? this.o.envs : undefined, policy: this.o.policy ?? unrestrictedPolicy() });
    const { desired } = rendered;
    // Secrets are decrypted (and MAC-verified) before a revision is used: a bad one changes nothing live.
    const issues = rendered.issues.length ? rendered.issues : await digestSecrets(desired, root, { reveal: (app, value) => this.secrets.add(app.env, value) });
    if (issues.length > 0) {
      if (!this.good) await this.restoreLastGood(revision);
      const message = `revision ${revision.slice(0, 7)} is invalid; still running ${this.good ? this.good.revision.slice(0, 7) : 'nothing'}. Fix the ops repository and commit: ${issues.map(formatIssue).join('; ')}`;
      this.renderError = { revision, issues, message };
      this.bus.publish({ type: 'render.failed', revision, issues: issues.map(formatIssue) });
      this.log.warn({ revision, issues: issues.length }, 'render failed');
      return;
    }
    const t1 = performance.now();
    await this.addDigests(desired, root, revision);
    this.log.debug({ revision, renderms: Math.round(t1 - t0), digestms: Math.round(performance.now() - t1) }, 'revision rendered');
    this.renderError = undefined;
    const previousEnvs = new Set(this.good?.desired.environments.map((e) => e.name) ?? []);
    this.goodUnpin?.();
    this.goodUnpin = this.source.pin(revision);
    this.good = { revision, commit: { message: fetched.message, author: fetched.author, time: fetched.time }, checkoutDir, desired };
    for (const key of this.inflight.supersede(desired, revision, (a) => this.target.templateOf(a))) this.log.info({ app: key, revision }, 'rollout superseded');
    this.store.setKv('lastGoodRevision', revision);
    for (const env of this.environmentNames()) {
      previousEnvs.delete(env);
      void this.reconciler.enqueue(env);
    }
    // An environment deleted from git: reconcile it to empty so its apps are pruned.
    for (const env of previousEnvs) void this.reconciler.enqueue(env);
  }

  /**
   * After a restart with an invalid head, environments keep the last revision that rendered cleanly: load it again
   * from the clone so status, diff and drift healing still have a desired state.
   */
  private async restoreLastGood(invalid: string): Promise<void> {
    const last = this.store.getKv('lastGoodRevision');
    if (!last || last === invalid) return;
    try {
      const info = await this.source.commitInfo(last);
      await this.load({ ...info, changed: false, forced: false, durationMs: 0 });
      this.log.info({ revision: last }, 'last good revision restored');
    } catch (err) {
      this.log.warn({ revision: last, err: errorMessage(err) }, 'last good revision unavailable');
    }
  }

  /** Content digests of artifact directories, so a changed file under the same version still rolls out. */
  /**
   * Content digests of artifact directories, so a changed file under the same version still rolls out. A directory's
   * git tree id is its content hash: one `git ls-tree` per revision gives them all, however many apps there are.
   */
  private async addDigests(desired: DesiredState, root: string, revision: string): Promise<void> {
    let trees: Map<string, string> | undefined;
    for (const env of desired.environments) {
      for (const app of env.apps) {
        if (!app.artifact.path) {
          app.artifact = { ...app.artifact, digest: app.artifact.sha256 };
          continue;
        }
        const rel = relative(root, app.artifact.path);
        trees ??= await this.treeIds(revision);
        const digest = trees.get(rel) ?? (await hashDirectory(app.artifact.path).catch(() => 'missing'));
        // The checkout dir differs per revision; relative paths keep the spec stable across revisions.
        app.artifact = { ...app.artifact, path: rel, digest };
      }
    }
  }

  /** Every directory of a revision → its git tree id. */
  private async treeIds(revision: string): Promise<Map<string, string>> {
    const out = await git(['ls-tree', '-r', '-d', '-z', '--full-tree', revision], { cwd: this.source.cloneDir }).catch(() => '');
    const trees = new Map<string, string>();
    for (const entry of out.split('\0')) {
      const tab = entry.indexOf('\t');
      if (tab < 0) continue;
      trees.set(entry.slice(tab + 1), `tree:${entry.slice(0, tab).split(' ')[2]}`);
    }
    return trees;
  }


  environmentNames(): string[] {
    const names = new Set<string>(this.good?.desired.environments.map((e) => e.name) ?? []);
    for (const env of this.store.inventoryEnvs()) if (!this.o.envs?.length || this.o.envs.includes(env)) names.add(env);
    return [...names].sort();
  }

  private desiredEnv(env: string): DesiredEnvironment {
    const found = this.good?.desired.environments.find((e) => e.name === env);
    if (found) return effectiveEnvironment(found);
    return { name: env, target: { local: {} }, apps: [], source: { file: '', line: 0, col: 0 } };
  }

  /**
   * Manual sync: retries specs that failed before and resolves with the outcome of the reconcile that served this
   * request. Concurrent requests for one environment are merged into the next reconcile (every app, `force` kept).
   */
  async sync(env: string, app?: string, opts: { force?: boolean; confirmPrune?: boolean } = {}): Promise<SyncOutcome> {
    if (!this.environmentNames().includes(env)) throw new Error(`unknown environment "${env}" (known: ${this.environmentNames().join(', ') || 'none'})`);
    if (this.stopped) return { result: 'Unchanged', message: 'the engine is stopping; run the sync again once it is up' };
    const apps = app ? [app] : this.desiredEnv(env).apps.map((a) => a.name);
    const outcome = this.manual.request(env, apps, opts);
    void this.reconciler.enqueue(env);
    return outcome;
  }

  async plan(env: string): Promise<Plan> {
    const good = this.good;
    return this.planWithObjects(this.desiredEnv(env), good?.revision ?? '', good?.checkoutDir);
  }

  /**
   * The plan of one environment against live, with each object's server-side difference on targets that manage
   * objects (what `keelson diff` shows). Pure reads: nothing live changes.
   */
  private async planWithObjects(desired: DesiredEnvironment, revision: string, checkoutDir: string | undefined): Promise<Plan> {
    const live = await this.target.observe(desired.name);
    const plan = this.planFor(desired, live, revision);
    if (checkoutDir !== undefined && this.target.diff) {
      for (const step of plan.steps) {
        const app = desired.apps.find((a) => a.name === step.app);
        if (app) step.objects = await this.target.diff(app, { revision, checkoutDir }).catch((err) => [{ key: '(diff failed)', action: 'update' as const, changes: [{ path: '', desired: errorMessage(err) }] }]);
      }
    }
    return plan;
  }

  /**
   * `keelson diff --revision`: the ops repository at `rev` (a branch, tag or sha, fetched into the clone) rendered the
   * way a new revision is, and planned against live per environment, the same path a sync plans with; nothing live
   * changes and the running revision stays. Environments the revision deletes are planned as empty. A revision that
   * does not render cleanly answers its problems instead of plans.
   */
  async preview(rev: string, opts: { env?: string } = {}): Promise<Preview> {
    const info = await this.source.fetchRevision(rev);
    const unpin = this.source.pin(info.revision);
    try {
      const root = await this.source.checkout(info.revision);
      const rendered = await renderRepository({ root, path: this.source.path || undefined, envs: this.o.envs?.length ? this.o.envs : undefined, policy: this.o.policy ?? unrestrictedPolicy() });
      const issues = rendered.issues.length ? rendered.issues : await digestSecrets(rendered.desired, root);
      const head = { revision: info.revision, commit: { message: info.message, author: info.author, time: info.time }, base: this.good?.revision ?? null };
      if (issues.length) return { ...head, issues: issues.map(formatIssue), environments: [] };
      await this.addDigests(rendered.desired, root, info.revision);
      const names = new Set([...rendered.desired.environments.map((e) => e.name), ...this.environmentNames()]);
      if (opts.env !== undefined && !names.has(opts.env)) throw new TerminalError(`unknown environment "${opts.env}" at ${info.revision.slice(0, 7)} (environments: ${[...names].sort().join(', ') || 'none'})`);
      // Environments new in the revision are observed on the target the revision gives them.
      for (const e of rendered.desired.environments) if (!this.targetSpecOf(e.name)) this.previewTargets.set(e.name, e.target);
      const environments: Plan[] = [];
      for (const env of [...names].sort()) {
        if (opts.env !== undefined && env !== opts.env) continue;
        const found = rendered.desired.environments.find((e) => e.name === env);
        const desired = found ? effectiveEnvironment(found) : { name: env, target: this.targetSpecOf(env) ?? { local: {} }, apps: [], source: { file: '', line: 0, col: 0 } };
        environments.push(await this.planWithObjects(desired, info.revision, root));
      }
      return { ...head, issues: [], environments };
    } finally {
      unpin();
    }
  }

  formatPlan(plan: Plan): string {
    return formatPlan(plan);
  }

  private planFor(desired: DesiredEnvironment, live: LiveApp[], revision: string, force?: Set<string>, confirmPrune?: Set<string>): Plan {
    return planEnvironment({
      desired,
      revision,
      live,
      // Apps the target adopted from live objects (taken over from another engine) are pruned too when undeclared.
      inventory: [...new Set([...this.store.inventoryKeys(desired.name).map((r) => r.app), ...live.filter((l) => l.adopted).map((l) => l.name)])],
      failures: this.store.failures(desired.name),
      templateOf: (a) => this.target.templateOf(a),
      force,
      confirmPrune,
    });
  }

  private async reconcileEnvironment(env: string): Promise<{ requeueAfterMs?: number }> {
    // The manual syncs requested so far: this reconcile serves them and tells their callers how it went.
    const manual = this.manual.take(env);
    try {
      const { outcome, requeueAfterMs } = await this.reconcileWith(env, manual);
      manual?.settle(outcome);
      return { requeueAfterMs };
    } catch (err) {
      manual?.settle({ result: 'Failed', message: this.secrets.mask(errorMessage(err)) });
      throw err;
    }
  }

  private async reconcileWith(env: string, manual: ManualRequest | undefined): Promise<{ outcome: SyncOutcome; requeueAfterMs?: number }> {
    const good = this.good;
    const resync = this.o.resyncMs ?? this.pollMs;
    if (!good) return { outcome: { result: 'Unchanged', message: 'no revision of the ops repository has rendered cleanly yet' }, requeueAfterMs: resync };
    const standby = await this.standbyReason(env);
    if (standby) return { outcome: { result: 'Unchanged', message: standby }, requeueAfterMs: resync };
    if (this.pauses.isPaused(env)) return { outcome: { result: 'Unchanged', message: `environment ${env} is paused; resume it to sync` }, requeueAfterMs: resync };
    const desired = this.desiredEnv(env);
    const live = await this.target.observe(env);
    const force = manual?.apps;
    // Planned before the failures are forgotten: a forced app whose failed spec is the live one is retried.
    const plan = this.pauses.withoutPaused(this.planFor(desired, live, good.revision, force, manual?.confirmPrune));
    for (const app of force ?? []) this.store.clearFailure(env, app);
    this.recordUnchanged(env, plan, good.revision, desired);
    const requeueAfterMs = requeueBeforeExpiry(desired, resync);
    if (!hasChanges(plan)) return { outcome: { result: 'Unchanged', message: 'live already equals desired' }, requeueAfterMs };
    const gate = this.windows.check(desired, good.revision, { manual: manual !== undefined, maxMs: requeueAfterMs });
    if (!gate.allowed) return { outcome: { result: 'Unchanged', message: this.windows.waiting(env) ?? 'waiting for a sync window' }, requeueAfterMs: gate.requeueAfterMs };
    const outcome = await this.execute(plan, desired, good, { takeover: manual?.force ?? new Set(), confirmPrune: manual?.confirmPrune ?? new Set() });
    return { outcome, requeueAfterMs };
  }

  /**
   * Why this engine must not write to `env` now (another engine holds its claim, or it is not taken yet); undefined
   * when it may. Taking the claim requeues the environment.
   */
  private async standbyReason(env: string): Promise<string | undefined> {
    const claims = this.o.claims;
    if (!claims) return undefined;
    claims.track(env);
    await claims.settled(env); // the first look at the claim: right after start, a sync need not wait for a requeue
    if (claims.holds(env)) return undefined;
    return claims.view(env)?.message ?? 'claiming the environment';
  }

  /** Whether a reconcile under way may go on writing to `env`: it holds the claim (claims are released after it ends). */
  private mayWrite(env: string): boolean {
    return !this.o.claims || this.o.claims.holds(env);
  }

  /** Aborted when the engine stops or loses the claim of `env`: a rollout under way stops waiting. */
  private interruptOf(env: string): AbortSignal {
    return this.o.claims ? AbortSignal.any([this.stopping.signal, this.o.claims.signal(env)]) : this.stopping.signal;
  }

  /** Apps already equal to desired now trace back to this revision too. */
  private recordUnchanged(env: string, plan: Plan, revision: string, desired: DesiredEnvironment): void {
    // Only a new revision can make this write anything: skip the inventory read on resyncs.
    if (this.recordedRevision.get(env) === revision) return;
    this.recordedRevision.set(env, revision);
    const inv = new Map(this.store.inventory(env).map((r) => [r.app, r]));
    const apps = new Map(desired.apps.map((a) => [a.name, a]));
    for (const step of plan.steps) {
      if (step.action !== 'none') continue;
      const row = inv.get(step.app);
      if (row && row.revision !== revision) this.store.putInventory({ ...row, revision, spec: apps.get(step.app)! });
    }
  }

  /** Applies a plan; `takeover`: apps of a `sync --force`, whose apply takes over fields other managers own. */
  private async execute(plan: Plan, desired: DesiredEnvironment, good: GoodRevision, manual: { takeover: Set<string>; confirmPrune: Set<string> }): Promise<SyncOutcome> {
    const started = Date.now();
    const env = plan.env;
    const changes: AppChange[] = [];
    const failed = new Set<string>();
    /** Apps whose rollout the engine stopping interrupted (and their dependents): the next engine takes them up. */
    const interrupted: string[] = [];
    /** Apps the target could not be reached for: the whole environment is retried with backoff. */
    const transient = new Set<string>();
    const active = plan.steps.filter((s) => s.action !== 'none' && s.action !== 'blocked');
    this.bus.publish({ type: 'sync.started', env, revision: good.revision, changes: active.length });
    this.log.info({ env, revision: good.revision, changes: active.length }, 'sync started');

    const byName = new Map(desired.apps.map((a) => [a.name, a]));
    const applySteps = plan.steps.filter((s) => s.action === 'create' || s.action === 'update' || s.action === 'scale');
    for (const wave of waves(applySteps, byName)) {
      await mapLimit(wave, this.target.concurrencyOf?.(env) ?? concurrency, async (step) => {
        const app = byName.get(step.app)!;
        if (app.dependsOn.some((d) => interrupted.includes(d)) || !this.mayWrite(env)) return void interrupted.push(step.app);
        const blockedBy = app.dependsOn.find((d) => failed.has(d));
        if (blockedBy) {
          failed.add(step.app);
          changes.push({ app: step.app, action: 'skipped', from: step.from, to: step.to, message: `dependency ${blockedBy} failed` });
          return;
        }
        const change = await this.applyStep(step, app, good, { force: manual.takeover.has(step.app), confirmPrune: manual.confirmPrune.has(step.app) });
        if (!change) return void interrupted.push(step.app);
        if (change.transient) transient.add(step.app);
        changes.push(change.change);
        if (change.change.action === 'failed') failed.add(step.app);
      });
    }
    const interruptedBy = () => {
      // Not a result: this sync goes on in the next engine, which records it.
      const why = this.stopped ? 'the engine stopping' : 'the loss of the claim on the environment';
      this.log.info({ env, revision: good.revision, apps: interrupted.join(', ') }, `sync interrupted by ${why}`);
      return { result: 'Unchanged' as const, message: `interrupted by ${why} (${interrupted.join(', ')}); the next engine finishes it` };
    };
    if (interrupted.length > 0) return interruptedBy();
    for (const step of plan.steps.filter((s) => s.action === 'delete').reverse()) {
      if (!this.mayWrite(env)) {
        interrupted.push(step.app);
        continue;
      }
      try {
        await runPreDelete(this.hookDeps(), env, step.app, good.revision);
        await this.target.delete(env, step.app);
        forgetHooks(this.store, env, step.app);
        this.store.deleteInventory(env, step.app);
        this.store.clearFailure(env, step.app);
        changes.push({ app: step.app, action: 'deleted', from: step.from });
        this.bus.publish({ type: 'app.changed', env, app: step.app, action: 'deleted', revision: good.revision, message: step.reason });
      } catch (err) {
        failed.add(step.app);
        changes.push({ app: step.app, action: 'failed', from: step.from, message: this.secrets.mask(`prune failed: ${errorMessage(err)}`) });
      }
    }
    if (interrupted.length > 0) return interruptedBy();
    for (const step of plan.steps.filter((s) => s.action === 'blocked')) changes.push({ app: step.app, action: 'skipped', to: step.to, message: step.reason });

    const result = failed.size > 0 ? 'Failed' : 'Succeeded';
    const summary = changes.map((c) => `${c.app} ${c.action}${c.from && c.to && c.from !== c.to ? ` (${c.from} → ${c.to})` : ''}`).join(', ');
    const message = changes.filter((c) => c.action === 'failed').map((c) => `${c.app}: ${c.message}`).join('; ') || summary;
    const durationMs = Date.now() - started;
    this.store.addSync({ env, revision: good.revision, startedAt: new Date(started).toISOString(), durationMs, result, summary, message, changes });
    this.bus.publish({ type: 'sync.completed', env, revision: good.revision, result, durationMs, message });
    this.log.info({ env, revision: good.revision, result, durationms: durationMs }, 'sync completed');
    if (transient.size > 0) throw new TransientError(`could not reach the target for ${[...transient].join(', ')}; retrying`);
    return { result, message };
  }

  /** What applying one app did; undefined when the engine stopped in the middle of its rollout. */
  private async applyStep(step: PlanStep, app: DesiredApp, good: GoodRevision, opts: { force: boolean; confirmPrune: boolean }): Promise<{ change: AppChange; transient?: boolean } | undefined> {
    const env = app.env;
    const apply = async () => {
      // Cancelled when a newer revision changes this app while the rollout still waits (see inflight.ts).
      const inflight = this.inflight.begin(env, app.name, this.target.templateOf(app));
      try {
        return await this.target.apply(app, { revision: good.revision, checkoutDir: good.checkoutDir, signal: inflight.signal, interrupt: this.interruptOf(env), ...(opts.force ? { force: true } : {}), ...(opts.confirmPrune ? { confirmPrune: true } : {}) });
      } finally {
        inflight.end();
      }
    };
    const hooks = this.desiredEnv(env).hooks?.[app.name];
    // Taken over from another engine and already as desired (the target adopted its live objects): no delivery hook.
    const settled = step.action === 'update' ? await this.target.settleAdopted?.(app, { revision: good.revision, checkoutDir: good.checkoutDir }) : undefined;
    // What the target and the hooks report carries app and hook output: masked here, before anything records it.
    const outcome = settled ?? this.secrets.maskDeep(
      await applyWithHooks(this.hookDeps(), { app, hooks, revision: good.revision, checkoutDir: good.checkoutDir, apply }).catch(
        (err): { ok: false; message: string; rolledBack: boolean; logTail: string[] } => ({ ok: false, message: errorMessage(err), rolledBack: false, logTail: [] }),
      ),
    );
    this.unreachable.delete(appKey(env, app.name));
    if (outcome.ok) {
      killPoint('synced');
      this.store.putInventory({ env, app: app.name, revision: good.revision, specHash: this.target.templateOf(app), version: app.version, appliedAt: new Date().toISOString(), spec: app });
      // Only now is the sync done: a target that marked it unfinished (crash safety) may forget the marker.
      this.target.synced?.(env, app.name);
      this.store.clearFailure(env, app.name);
      this.bus.publish({ type: 'app.changed', env, app: app.name, action: outcome.action, revision: good.revision, message: outcome.message });
      return { change: { app: app.name, action: outcome.action, from: step.from, to: step.to, message: outcome.message } };
    }
    if ('interrupted' in outcome && outcome.interrupted) return undefined;
    if ('transient' in outcome && outcome.transient) {
      // Not the spec's fault: not held as failed, the reconciler retries the environment with backoff.
      const message = `${outcome.message} (retrying with backoff)`;
      this.unreachable.set(appKey(env, app.name), message);
      this.bus.publish({ type: 'app.failed', env, app: app.name, revision: good.revision, message });
      this.log.warn({ env, app: app.name, revision: good.revision, err: outcome.message }, 'target unreachable; will retry');
      return { change: { app: app.name, action: 'failed', from: step.from, to: step.to, message }, transient: true };
    }
    const tail = outcome.logTail.length ? `; last log lines:\n${outcome.logTail.join('\n')}` : '';
    const message = `${outcome.message}${tail}`;
    this.store.putFailure({ env, app: app.name, specHash: specKey((a) => this.target.templateOf(a), app), revision: good.revision, message, at: new Date().toISOString() });
    if (!outcome.rolledBack && !this.store.inventoryKeys(env).some((r) => r.app === app.name)) {
      // A first deploy that never got ready still runs: record it so it can be pruned.
      this.store.putInventory({ env, app: app.name, revision: good.revision, specHash: this.target.templateOf(app), version: app.version, appliedAt: new Date().toISOString(), spec: app });
    }
    this.bus.publish({ type: 'app.failed', env, app: app.name, revision: good.revision, message });
    this.log.warn({ env, app: app.name, revision: good.revision, rolledback: outcome.rolledBack }, 'app sync failed');
    return { change: { app: app.name, action: 'failed', from: step.from, to: step.to, message } };
  }

  /** The environment as the last good revision declares it (notifications read it). */
  desiredEnvironment(env: string): DesiredEnvironment | undefined {
    return this.good?.desired.environments.find((e) => e.name === env);
  }

  private hookDeps(): SyncHookDeps {
    return { stateDir: this.o.stateDir, bus: this.bus, log: this.log, target: this.target, store: this.store, checkout: (rev) => this.source.checkout(rev), mask: (text) => this.secrets.mask(text) };
  }

  /** Re-check an environment soon (drift the target noticed). */
  requeue(env: string): void {
    void this.reconciler.enqueue(env);
  }

  async status(filterEnv?: string): Promise<StatusView> {
    const envs = this.environmentNames().filter((e) => !filterEnv || e === filterEnv);
    const environments: EnvironmentStatusView[] = [];
    for (const env of envs) {
      const desired = this.desiredEnv(env);
      const live = await this.target.observe(env);
      const liveBy = new Map(live.map((a) => [a.name, a]));
      const failures = new Map(this.store.failures(env).map((f) => [f.app, f]));
      const names = [...new Set([...desired.apps.map((a) => a.name), ...live.map((a) => a.name)])];
      const desiredBy = new Map(desired.apps.map((a) => [a.name, a]));
      const apps = names.map((name): AppStatusView => {
        const d = desiredBy.get(name);
        const l = liveBy.get(name);
        const f = failures.get(name);
        let sync: SyncCode = 'Unknown';
        let message = l?.message ?? 'not deployed yet';
        if (this.good) {
          if (!d) {
            sync = 'OutOfSync';
            message = 'no longer declared; will be pruned';
          } else if (f && f.specHash === specKey((a) => this.target.templateOf(a), d)) {
            // Whether rolled back or left running (a first deploy has nothing to roll back to), the desired spec failed.
            sync = 'Failed';
            message = `${f.message}\nTo retry: commit a fix, or run \`keelson sync --env ${env} --app ${name}\`.`;
          } else if (l && l.template === this.target.templateOf(d) && l.spec.replicas === d.replicas && l.spec.port === d.port && l.intact && !l.outOfSync && !l.unfinishedSync) sync = 'Synced';
          else {
            sync = 'OutOfSync';
            if (l?.outOfSync && l.template === this.target.templateOf(d)) message = l.outOfSync;
            if (l?.unfinishedSync && l.template === this.target.templateOf(d)) message = l.unfinishedSync;
            if (l?.adopted) message = l.adopted;
            const unreachable = this.unreachable.get(appKey(env, name));
            if (unreachable) message = unreachable;
          }
        }
        if (this.renderError) message = `${message}. ${this.renderError.message}`;
        return {
          name,
          // A manifests app that declares no version shows the revision it runs (and the one it should run).
          version: l ? shownVersion(l.version, l.revision) || null : null,
          desiredVersion: d ? shownVersion(d.version, this.good?.revision) || null : null,
          revision: l?.revision ?? null,
          sync,
          health: this.pauses.isPaused(env, name) ? 'Suspended' : (l?.health ?? 'Missing'),
          message: this.secrets.mask(message),
          replicas: l?.replicas ?? { desired: d?.replicas ?? 0, ready: 0, total: 0, updated: 0 },
          instances: l?.instances ?? [],
          port: d?.port ?? l?.spec.port ?? null,
          ...(l?.certificates?.length ? { certificates: l.certificates } : {}),
        };
      });
      environments.push({
        name: env,
        target: targetName(desired.target),
        revision: this.good?.revision ?? null,
        syncing: this.reconciler.isRunning(env),
        syncWindow: this.windows.waiting(env),
        protected: desired.protected ?? false,
        ...(this.o.claims ? { claim: this.o.claims.view(env) ?? null } : {}),
        paused: this.pauses.isPaused(env),
        phase: phaseOf(desired),
        expiresAt: desired.expiresAt ?? null,
        error: this.renderError ? { revision: this.renderError.revision, message: this.renderError.message, issues: this.renderError.issues.map(formatIssue) } : null,
        apps,
      });
    }
    return {
      revision: this.latest?.revision ?? null,
      commit: this.latest ? { message: this.latest.message, author: this.latest.author, time: this.latest.time } : null,
      source: { repo: this.source.repo, ref: this.source.ref ?? null, path: this.source.path, lastFetch: this.lastFetchAt ?? null, error: this.sourceError ?? null },
      environments,
      ...(this.o.claims ? { engine: this.o.claims.engineView() } : {}),
    };
  }

  /** `keelson run`: a one-off process in the app's current release with its environment; recorded in history. */
  runOnce(env: string, app: string, argv: string[], io: { sink: RunSink; signal?: AbortSignal; timeoutMs?: number }): Promise<RunResult> {
    return runApp({ target: this.target, store: this.store, bus: this.bus, log: this.log }, env, app, argv, io);
  }

  /** `keelson test`: the Helm chart's test hooks of an app as the running revision declares it, against live. */
  async helmTests(env: string, app: string): Promise<HelmTestReport> {
    const good = this.good;
    const desired = good?.desired.environments.find((e) => e.name === env)?.apps.find((a) => a.name === app);
    if (!good || !desired) throw new TerminalError(`app "${app}" is not declared in environment "${env}" by the running revision`);
    if (!this.target.helmTests) throw new TerminalError(`environment ${env} has no Helm charts to test`);
    return this.target.helmTests(desired, { revision: good.revision, checkoutDir: good.checkoutDir });
  }

  logsOf(env: string, app: string): { replica: string; path: string }[] {
    return this.target.logs(env, app);
  }

  /** Log text as the API serves it: secret values masked (read the files of `logsOf` through this). */
  maskLog(text: string): string {
    return this.secrets.mask(text);
  }

  stateDir(): string {
    return this.o.stateDir;
  }

  checkoutRoot(): string | undefined {
    return this.good ? join(this.good.checkoutDir, this.source.path) : undefined;
  }

  /** Where an environment runs per the running revision; undefined once git no longer declares it. */
  targetSpecOf(env: string): TargetSpec | undefined {
    return this.good?.desired.environments.find((e) => e.name === env)?.target ?? this.previewTargets.get(env);
  }
}

/** Groups steps so that an app comes after the apps it depends on; steps in one wave run concurrently. */
function waves(steps: PlanStep[], byName: Map<string, DesiredApp>): PlanStep[][] {
  const depth = new Map<string, number>();
  const depthOf = (name: string, seen = new Set<string>()): number => {
    if (depth.has(name)) return depth.get(name)!;
    if (seen.has(name)) return 0;
    seen.add(name);
    const deps = byName.get(name)?.dependsOn ?? [];
    const d = deps.length ? Math.max(...deps.map((x) => depthOf(x, seen) + 1)) : 0;
    depth.set(name, d);
    return d;
  };
  const out: PlanStep[][] = [];
  for (const s of steps) (out[depthOf(s.app)] ??= []).push(s);
  return out.filter(Boolean);
}

async function mapLimit<T>(items: T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (i < items.length) await fn(items[i++]);
  });
  await Promise.all(workers);
}
