import { watch, type FSWatcher } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import type { DesiredApp } from '../../core/model.js';
import { errorMessage, TransientError } from '../../core/errors.js';
import type { EventBus } from '../../core/events.js';
import type { Logger } from '../../log.js';
import type { Store } from '../../store/store.js';
import { runArgv } from '../../hooks/runner.js';
import type { ApplyContext, ApplyOutcome, CertificateStatus, HookExecRequest, LiveApp, Target } from '../target.js';
import { fetchArtifact, unpackTarGz } from './artifact.js';
import { rotateIfNeeded } from './logs.js';
import { isProgressive, progressiveRollout, type ProgressiveDeps } from './progressive.js';
import { ProxyManager } from './proxy-manager.js';
import { materializeRelease, pruneReleases, verifyRelease, type Release } from './releases.js';
import { LocalRolloutCheckpoints, markFinished, rollingRecord, takeOverInterrupted } from './rollout-state.js';
import { runProcess, type RunResult, type RunSink } from '../../run/one-off.js';
import { templateHash } from './spec-hash.js';
import { Supervisor, type AppRun, type RolloutResult } from './supervisor.js';
import { LocalSecrets, SECRETS_DIR_VAR } from '../../secrets/local-runtime.js';
import { grantSecretFiles, identityEnv, IsolationError, prepareDataDir, restrictReleases, type IsolationPolicy } from './isolation.js';
import type { CgroupSystem } from './cgroups.js';
import { tlsCertPath, tlsKeyPath } from '../../core/model.js';
import { readFile } from 'node:fs/promises';
import type { WebPorts } from './proxy/protocol.js';
import { checkCertificate } from './tls/cert-files.js';
import { CertificateManager, type CertificateManagerOptions } from './tls/certificates.js';

export interface LocalTargetOptions {
  stateDir: string;
  store: Store;
  bus: EventBus;
  log: Logger;
  /** Asks the engine to reconcile an environment (a release was modified on disk). */
  requeue: (env: string) => void;
  /** Releases kept per app for instant rollback. Default 5. */
  keepReleases?: number;
  /**
   * Who apps without `user:` run as when the engine runs as root (`allowRootApps`, `defaultUser`). Default: from
   * KEELSON_ALLOW_ROOT_APPS / KEELSON_DEFAULT_USER, else refused.
   */
  isolation?: IsolationPolicy;
  /** The machine's cgroups (default: detected on first use). */
  cgroups?: () => Promise<CgroupSystem>;
  /** The proxy's public side: listen address, web ports of apps with `hosts`, trusted proxies. */
  proxy?: { listenHost?: string; web?: WebPorts; trustedProxies?: string[] };
  /** ACME timing (tests: short renewal threshold and retries). */
  acme?: Pick<CertificateManagerOptions, 'renewBeforeMs' | 'retryBaseMs' | 'retryMaxMs'>;
}

/**
 * The embedded default target: apps run as supervised processes on this machine behind Keelson's own proxy.
 */
export class LocalTarget implements Target {
  readonly name = 'local';
  readonly supervisor: Supervisor;
  readonly proxy: ProxyManager;
  private readonly watchers = new Map<string, FSWatcher>();
  private readonly modified = new Set<string>();
  private rotateTimer?: NodeJS.Timeout;
  /** Decrypted secrets of the apps: env vars in memory, files in a private dir of the state dir. */
  readonly secrets: LocalSecrets;
  /** Rollouts under way (every strategy), kept in the store so that a restarted engine resumes them. */
  readonly rollouts: LocalRolloutCheckpoints;

  /** HTTPS certificates of the apps' hosts (files of the ops repository, or ACME). */
  readonly tls: CertificateManager;

  constructor(private readonly o: LocalTargetOptions) {
    this.proxy = new ProxyManager({ stateDir: o.stateDir, log: o.log, bus: o.bus, ...o.proxy });
    this.tls = new CertificateManager({ stateDir: o.stateDir, log: o.log.child({ component: 'tls' }), bus: o.bus, publish: () => this.proxy.refresh(), ...o.acme });
    this.proxy.tls = this.tls;
    this.secrets = new LocalSecrets({ stateDir: o.stateDir });
    this.rollouts = new LocalRolloutCheckpoints(o.store);
    const secretEnv = async (spec: DesiredApp, template: string) => {
      const env = await this.secrets.envFor(spec, template);
      // Decrypted files are the app user's to read (and no other app's).
      if (env[SECRETS_DIR_VAR]) await grantSecretFiles(o.stateDir, env[SECRETS_DIR_VAR], await this.supervisor.runAsOf(spec));
      return env;
    };
    this.supervisor = new Supervisor({ stateDir: o.stateDir, store: o.store, bus: o.bus, log: o.log, routes: this.proxy, secretEnv, isolation: o.isolation, cgroups: o.cgroups });
    this.proxy.onRestart(() => this.supervisor.requestPublish());
  }

  async start(): Promise<void> {
    // Certificates first: the supervisor's first route publish must already carry them.
    await this.tls.restore().catch((err) => this.o.log.error({ err: errorMessage(err) }, 'certificate index unreadable'));
    await this.supervisor.start(this.rollouts.all());
    for (const r of this.rollouts.all()) if (!this.supervisor.runOf(r.env, r.app)) this.rollouts.clear(r.env, r.app);
    this.rotateTimer = setInterval(() => void this.rotateLogs(), 10_000);
    this.rotateTimer.unref();
    for (const s of this.supervisor.status()) this.watchRelease(s.env, s.app, s.release);
    // Certificates of adopted apps: from disk, so nothing is ordered again while a valid one is there.
    const live = new Set(this.supervisor.status().filter((s) => s.spec.hosts && s.spec.tls).map((s) => `${s.env}/${s.app}`));
    await this.tls.retain((env, app) => live.has(`${env}/${app}`));
    for (const s of this.supervisor.status()) {
      const { hosts, tls } = s.spec;
      if (!hosts || !tls) continue;
      if (tls.acme) await this.tls.useAcme(s.env, s.app, hosts, tls.acme);
      else if (tls.certificate && !this.tls.has(s.env, s.app)) await this.tls.adoptFile(s.env, s.app, hosts);
    }
    // A modified release is only trusted after a re-hash: check the adopted ones once at start.
    await Promise.all(
      this.supervisor.status().map(async (s) => {
        const v = await verifyRelease(s.release).catch(() => ({ intact: true, changed: [] }));
        if (!v.intact) this.modified.add(s.release.dir);
      }),
    );
  }

  async close(): Promise<void> {
    if (this.rotateTimer) clearInterval(this.rotateTimer);
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
    this.tls.close();
    await this.supervisor.detach();
    this.proxy.close();
  }

  templateOf(app: DesiredApp): string {
    return templateHash(app);
  }

  async observe(env: string): Promise<LiveApp[]> {
    return this.supervisor.status(env).map((s) => ({
      ...this.interruptedRolloutOf(s.env, s.app, s.template),
      name: s.app,
      spec: s.spec,
      template: s.template,
      version: s.version,
      revision: s.revision,
      health: s.health,
      message: s.message,
      replicas: s.replicas,
      instances: s.instances,
      intact: !this.modified.has(s.release.dir),
      releaseDir: s.release.dir,
      ...this.certificatesOf(s.env, s.app),
    }));
  }

  private certificatesOf(env: string, app: string): { certificates?: CertificateStatus[] } {
    const certificates = this.tls.views().filter((v) => v.env === env && v.app === app).map(({ env: _e, app: _a, ...c }) => c);
    return certificates.length ? { certificates } : {};
  }

  async apply(app: DesiredApp, ctx: ApplyContext): Promise<ApplyOutcome> {
    const existed = this.supervisor.appStatusOf(app.env, app.name) !== undefined;
    let runAs;
    try {
      // Refused before anything changes: what runs keeps running, the status says what to fix.
      runAs = await this.supervisor.runAsOf(app);
    } catch (err) {
      if (!(err instanceof IsolationError)) throw err;
      return { ok: false, message: err.message, rolledBack: false, logTail: [] };
    }
    let release: Release;
    try {
      release = await this.materialize(app, ctx);
      await restrictReleases(this.o.stateDir, app.env, app.name, runAs);
      await prepareDataDir(this.o.stateDir, app.env, app.name, runAs);
    } catch (err) {
      // Only a download that timed out, failed on the network or got a server error may work later; anything else
      // (a missing artifact directory, a bad checksum) is held as failed until the desired state changes.
      return { ok: false, message: `release of ${app.name} ${app.version} could not be prepared: ${errorMessage(err)}`, rolledBack: false, logTail: [], transient: err instanceof TransientError };
    }
    try {
      await this.secrets.prepare(app, templateHash(app), ctx.checkoutDir);
    } catch (err) {
      return { ok: false, message: `secrets of ${app.name} ${app.version} could not be prepared: ${errorMessage(err)}`, rolledBack: false, logTail: [] };
    }
    // A certificate of the ops repository must match its key, be current and name the hosts before anything changes.
    let staticCert: { cert: string; key: string } | undefined;
    if (app.tls?.certificate && app.hosts) {
      try {
        const cert = await this.secrets.readFile(app, templateHash(app), tlsCertPath);
        const key = await this.secrets.readFile(app, templateHash(app), tlsKeyPath);
        checkCertificate(cert, key, `certificate ${app.tls.certificate.cert}`, app.hosts);
        staticCert = { cert, key };
      } catch (err) {
        return { ok: false, message: `TLS of ${app.name} ${app.version}: ${errorMessage(err)}`, rolledBack: false, logTail: [] };
      }
    }
    // The CA of a private ACME directory, read from this revision now: a missing file fails the apply, not the order.
    let acmeCa: string | undefined;
    if (app.tls?.acme?.caFile !== undefined) {
      try {
        acmeCa = await readFile(join(ctx.checkoutDir, app.tls.acme.caFile), 'utf8');
      } catch (err) {
        return { ok: false, message: `TLS of ${app.name} ${app.version}: caFile ${app.tls.acme.caFile} cannot be read (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`, rolledBack: false, logTail: [] };
      }
    }
    const wasModified = this.modified.delete(release.dir);
    const restartAll = ctx.restartAll || wasModified;
    const progressive: ProgressiveDeps = { supervisor: this.supervisor, bus: this.o.bus, stats: () => this.proxy.stats(), states: this.rollouts };
    const taken = await takeOverInterrupted(progressive, app, release, ctx.revision, restartAll);
    const resume = taken?.strategy === 'rolling' ? undefined : taken;
    const result = resume || (!taken && isProgressive(this.supervisor, app, templateHash(app), restartAll))
      ? await progressiveRollout(progressive, app, release, ctx.revision, { signal: ctx.signal, interrupt: ctx.interrupt, resume })
      : await this.rolling(app, release, ctx, restartAll);
    if (!result.ok) {
      return { ok: false, message: result.message, rolledBack: result.rolledBack, logTail: result.logTail, ...(result.interrupted ? { interrupted: true } : {}) };
    }
    await this.useCertificates(app, staticCert, acmeCa);
    await this.secrets.keepOnly(app.env, app.name, templateHash(app)).catch(() => undefined);
    this.watchRelease(app.env, app.name, release);
    await this.pruneOldReleases(app);
    return { ok: true, action: existed ? 'configured' : 'created', message: result.message };
  }

  /**
   * A rolling update, recorded while it replaces replicas: an engine stopped in the middle leaves the record, and the
   * next engine's apply finishes the update or puts every replica back on one version (takeOverInterrupted).
   */
  private async rolling(app: DesiredApp, release: Release, ctx: ApplyContext, restartAll: boolean): Promise<RolloutResult> {
    const onReplace = (previous: AppRun) => {
      // A resumed update keeps its record: its stable set is the one it started from.
      if (previous.template !== templateHash(app) || previous.release.id !== release.id) {
        if (this.rollouts.get(app.env, app.name)?.strategy !== 'rolling') this.rollouts.save(rollingRecord(previous, app, release, ctx.revision));
      }
    };
    const result = await this.supervisor.rollout(app, release, ctx.revision, { restartAll, signal: ctx.signal, interrupt: ctx.interrupt, onReplace });
    // Done: the record stays, marked finished, until the engine recorded the sync (synced); failed: it goes.
    if (result.ok) markFinished(this.rollouts, app.env, app.name);
    else if (!result.interrupted) this.rollouts.clear(app.env, app.name);
    return result;
  }

  /** After a successful rollout: the app's certificate from the repository, or its ACME order, or none. */
  private async useCertificates(app: DesiredApp, staticCert: { cert: string; key: string } | undefined, acmeCa: string | undefined): Promise<void> {
    const { hosts, tls } = app;
    try {
      if (hosts && staticCert) {
        await this.tls.useFile(app.env, app.name, hosts, staticCert.cert, staticCert.key, `certificate ${tls!.certificate!.cert}`);
      } else if (hosts && tls?.acme) {
        await this.tls.useAcme(app.env, app.name, hosts, tls.acme, acmeCa);
      } else if (this.tls.has(app.env, app.name)) {
        await this.tls.forget(app.env, app.name);
      }
    } catch (err) {
      this.o.log.error({ env: app.env, app: app.name, err: errorMessage(err) }, 'certificate setup failed');
    }
  }

  async delete(env: string, app: string): Promise<void> {
    await this.tls.forget(env, app).catch(() => undefined);
    await this.supervisor.remove(env, app);
    this.rollouts.clear(env, app);
    await this.secrets.remove(env, app);
    const w = this.watchers.get(`${env}/${app}`);
    w?.close();
    this.watchers.delete(`${env}/${app}`);
  }

  async runOnce(env: string, app: string, argv: string[], io: { sink: RunSink; signal?: AbortSignal; timeoutMs?: number }): Promise<RunResult> {
    const s = this.supervisor.appStatusOf(env, app);
    if (!s) throw new Error(`app "${app}" is not running in environment "${env}"; a one-off needs its current release (see keelson status)`);
    const runAs = await this.supervisor.runAsOf(s.spec);
    const secretEnv = await this.secrets.envFor(s.spec, s.template);
    if (secretEnv[SECRETS_DIR_VAR]) await grantSecretFiles(this.o.stateDir, secretEnv[SECRETS_DIR_VAR], runAs);
    const ids = runAs ? { uid: runAs.uid, gid: runAs.gid } : {};
    return runProcess({ argv, cwd: s.release.dir, env: { ...this.supervisor.processEnv(s.spec), ...identityEnv(runAs), ...secretEnv, KEELSON_RUN: '1' }, ...ids, ...io });
  }

  /**
   * Deploy hooks' `exec` steps of an app that runs as its own user run as that user too, with the same variables and
   * in the same directory, except that a step meant for the new artifact's directory in the checkout runs in the
   * release made from it. Undefined (a plain local process, as the engine's user) when the app runs as the engine's
   * user; refused like the app itself when the engine's policy refuses it.
   */
  async hookExec(r: HookExecRequest): Promise<{ ok: boolean; message: string; output: string } | undefined> {
    const spec = r.spec ?? this.supervisor.appStatusOf(r.env, r.app)?.spec;
    if (!spec || r.cwd === undefined) return undefined;
    let runAs;
    try {
      runAs = await this.supervisor.runAsOf(spec);
    } catch (err) {
      if (err instanceof IsolationError) return { ok: false, message: err.message, output: '' };
      throw err;
    }
    if (!runAs) return undefined;
    let cwd = r.cwd;
    const inCheckout = r.checkoutDir !== undefined && !relative(r.checkoutDir, cwd).startsWith('..');
    if (inCheckout && r.spec?.artifact.path) {
      // Checkouts are the engine's alone: run in the release made from that directory (the apply reuses it).
      try {
        const release = await this.materialize(r.spec, { revision: '', checkoutDir: r.checkoutDir! });
        await restrictReleases(this.o.stateDir, r.spec.env, r.spec.name, runAs);
        cwd = release.dir;
      } catch (err) {
        return { ok: false, message: `release of ${r.spec.name} ${r.spec.version} could not be prepared: ${errorMessage(err)}`, output: '' };
      }
    }
    return runArgv(r.argv, { cwd, vars: r.vars, uid: runAs.uid, gid: runAs.gid, env: identityEnv(runAs) }, r.timeoutMs, r.signal);
  }

  /**
   * A rollout the engine was stopped in the middle of, until an apply resumes (or aborts) it; or one that finished
   * here before the engine stopped without recording it, until an apply finishes the sync.
   */
  private interruptedRolloutOf(env: string, app: string, template: string): { interruptedRollout?: string; unfinishedSync?: string } {
    const r = this.rollouts.get(env, app);
    if (r?.checkpoint.finished) return r.template === template ? { unfinishedSync: `the rollout to ${r.to} finished here but the engine stopped before recording it; the next sync finishes it` } : {};
    return r && r.template !== template ? { interruptedRollout: r.to } : {};
  }

  /** The engine recorded the app's sync: a finished rollout's record goes (see markFinished). */
  synced(env: string, app: string): void {
    if (this.rollouts.get(env, app)?.checkpoint.finished) this.rollouts.clear(env, app);
  }

  logs(env: string, app: string): { replica: string; path: string }[] {
    return this.supervisor.logPathsOf(env, app);
  }

  /** Apps write straight into their log files; rotation is copy-truncate at 10 MiB, 5 kept. */
  private async rotateLogs(): Promise<void> {
    const files = [join(this.o.stateDir, 'logs', 'proxy.log')];
    for (const s of this.supervisor.status()) for (const i of s.instances) files.push(i.logPath);
    for (const f of files) await rotateIfNeeded(f).catch(() => undefined);
  }

  private releasesDir(env: string): string {
    return join(this.o.stateDir, 'releases', env);
  }

  private async materialize(app: DesiredApp, ctx: ApplyContext): Promise<Release> {
    const releasesDir = this.releasesDir(app.env);
    if (app.artifact.path) {
      const sourceDir = resolve(ctx.checkoutDir, app.artifact.path);
      const rel = relative(ctx.checkoutDir, sourceDir);
      if (rel.startsWith('..') || isAbsolute(rel)) throw new Error(`artifact path ${app.artifact.path} is outside the repository`);
      const release = await materializeRelease({ releasesDir, app: app.name, version: app.version, sourceDir });
      return this.freshIfModified(release, () => materializeRelease({ releasesDir, app: app.name, version: app.version, sourceDir }));
    }
    const file = await fetchArtifact({ url: app.artifact.url!, sha256: app.artifact.sha256!, cacheDir: join(this.o.stateDir, 'artifacts') });
    const tmp = await mkdtemp(join(this.o.stateDir, 'unpack-'));
    try {
      await unpackTarGz(file, tmp);
      const release = await materializeRelease({ releasesDir, app: app.name, version: app.version, sourceDir: tmp });
      return await this.freshIfModified(release, () => materializeRelease({ releasesDir, app: app.name, version: app.version, sourceDir: tmp }));
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }

  /** A release dir edited by hand is moved aside (running processes keep their cwd) and made again. */
  private async freshIfModified(release: Release, again: () => Promise<Release>): Promise<Release> {
    if (!this.modified.has(release.dir)) {
      const v = await verifyRelease(release);
      if (v.intact) return release;
    }
    const { rename, chmod } = await import('node:fs/promises');
    const aside = `${release.dir}.modified-${Date.now()}`;
    await chmod(join(release.dir, '..'), 0o755).catch(() => undefined);
    await rename(release.dir, aside);
    this.o.log.warn({ release: release.id, aside }, 'modified release moved aside');
    this.modified.add(release.dir);
    return again();
  }

  private watchRelease(env: string, app: string, release: { id: string; dir: string; hash: string }): void {
    const key = `${env}/${app}`;
    this.watchers.get(key)?.close();
    try {
      const w = watch(release.dir, { recursive: true, persistent: false }, () => {
        void verifyRelease(release).then((v) => {
          if (v.intact || this.modified.has(release.dir)) return;
          this.modified.add(release.dir);
          this.o.bus.publish({ type: 'drift.detected', env, app, kind: 'release-modified', message: `files changed in release ${release.id}: ${v.changed.slice(0, 5).join(', ')}` });
          this.o.requeue(env);
        }, () => undefined);
      });
      w.on('error', () => w.close());
      this.watchers.set(key, w);
    } catch {
      /* the release dir vanished; the next apply recreates it */
    }
  }

  private async pruneOldReleases(app: DesiredApp): Promise<void> {
    const inUse = new Set(this.supervisor.status(app.env).filter((s) => s.app === app.name).flatMap((s) => s.instances.map((i) => i.release)));
    await pruneReleases({ releasesDir: this.releasesDir(app.env), app: app.name, keep: this.o.keepReleases ?? 5, inUse }).catch((err) =>
      this.o.log.warn({ app: app.name, err: errorMessage(err) }, 'release prune failed'),
    );
  }
}
