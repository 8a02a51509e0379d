import type { DesiredApp } from '../core/model.js';
import type { HealthCode } from '../core/types.js';
import type { RunResult, RunSink } from '../run/one-off.js';
import type { HelmTestReport } from './kubernetes/helm-tests.js';

/** One app as a target observes it. */
export interface LiveApp {
  name: string;
  /** The spec the target runs now (the template of its current replicas). */
  spec: DesiredApp;
  /** Hash of what needs new processes/pods when it changes; compared with the desired template. */
  template: string;
  version: string;
  /** The commit this app was last applied from. */
  revision: string;
  health: HealthCode;
  message: string;
  replicas: { desired: number; ready: number; total: number; updated: number };
  instances: unknown[];
  /** False when files of the live release were changed behind Keelson's back. */
  intact: boolean;
  /** Directory of the live release, where `exec` hooks run (targets that run apps on this machine). */
  releaseDir?: string;
  /** Targets that manage several objects per app (Kubernetes) report each one. */
  objects?: ObjectStatus[];
  /**
   * Version of a progressive rollout an engine restart interrupted and no apply has taken up yet (local target):
   * the next apply resumes it, or aborts it when it is no longer desired.
   */
  interruptedRollout?: string;
  /**
   * Why the app is OutOfSync although every object it declares is as desired (Kubernetes: objects no longer declared
   * but kept by `Prune=false`, or waiting for prune confirmation). Absent or empty when none.
   */
  outOfSync?: string;
  /** Objects whose prune waits for confirmation (`keelson sync --confirm-prune`). */
  pendingPrune?: string[];
  /**
   * Why the last sync of this very spec is unfinished (Kubernetes: the engine stopped after the target recorded the
   * objects, before PostSync hooks ran or before the engine recorded the sync): the next sync finishes it.
   */
  unfinishedSync?: string;
  /**
   * The target knows the app only from live objects it adopted (Kubernetes: an environment taken over from another
   * engine, or a new state directory; see adopt.ts): why, for status. The next sync compares every object with desired.
   */
  adopted?: string;
  /** HTTPS certificates of the app's hosts (local target). */
  certificates?: CertificateStatus[];
}

/** One certificate of an app's hosts, as `keelson status` and the API show it (never key material). */
export interface CertificateStatus {
  hosts: string[];
  source: 'acme' | 'file';
  state: 'Ready' | 'Pending' | 'Failed';
  serving: boolean;
  issuer: string | null;
  notAfter: string | null;
  serial: string | null;
  lastRenewal: string | null;
  lastError: string | null;
  nextAttemptAt: string | null;
}

/** One object of an app as a target sees it: `kind/namespace/name`, its health and why. */
export interface ObjectStatus {
  key: string;
  health: HealthCode;
  message: string;
}

/** What applying did to one object: the system's outcome words plus `failed`. */
export interface ObjectOutcome {
  key: string;
  action: 'created' | 'configured' | 'unchanged' | 'deleted' | 'skipped' | 'failed';
  message?: string;
}

/** One object's server-side difference between live and desired, for `keelson diff`. */
export interface ObjectDiff {
  key: string;
  action: 'create' | 'update' | 'delete' | 'none';
  /** A change with path `INVALID_FIELD` is the API server refusing a field (its message in `desired`), not a field. */
  changes: { path: string; live?: unknown; desired?: unknown }[];
}

/** The path of an `ObjectDiff` change that says the API server refused a field (strict validation in a dry-run). */
export const INVALID_FIELD = '(invalid)';

export interface ApplyContext {
  revision: string;
  /** Root of the checkout at `revision`, for artifacts given by path. */
  checkoutDir: string;
  signal?: AbortSignal;
  /**
   * Aborted when the engine stops: a progressive rollout stops waiting and is left as it is (outcome `interrupted`),
   * for the next engine to resume.
   */
  interrupt?: AbortSignal;
  /** Replace every replica even if nothing changed (heals a modified release). */
  restartAll?: boolean;
  /** Take over fields other managers own (Kubernetes server-side apply conflicts); only on request. */
  force?: boolean;
  /** Delete objects whose prune waits for confirmation (Argo CD's `Prune=confirm`); only on request. */
  confirmPrune?: boolean;
}

export interface HookExecRequest {
  env: string;
  app: string;
  /** The app being deployed (its pod template) and its checkout; absent: the live app (preDelete). */
  spec?: DesiredApp;
  checkoutDir?: string;
  argv: string[];
  /** Where the step runs when run on this machine (the new artifact's directory, else the live release). */
  cwd?: string;
  /** The app's variables and the KEELSON_* hook variables. */
  vars: Record<string, string>;
  timeoutMs: number;
  signal?: AbortSignal;
}

/**
 * A failed apply: `interrupted` when the engine stopping cut a rollout short (the next engine takes it up);
 * `transient` when the target could not be reached or answered a server error (retried with backoff, the spec is
 * not held as failed).
 */
export type ApplyOutcome =
  | { ok: true; action: 'created' | 'configured'; message: string; objects?: ObjectOutcome[] }
  | { ok: false; message: string; rolledBack: boolean; logTail: string[]; objects?: ObjectOutcome[]; interrupted?: boolean; transient?: boolean };

/**
 * Where apps run. Shared code never asks which target it talks to; targets declare what they can do.
 */
export interface Target {
  readonly name: string;
  start(): Promise<void>;
  /** Stops watching; leaves what runs running. */
  close(): Promise<void>;
  templateOf(app: DesiredApp): string;
  observe(env: string): Promise<LiveApp[]>;
  /** Creates or updates one app and resolves when it is rolled out, or rolled back. */
  apply(app: DesiredApp, ctx: ApplyContext): Promise<ApplyOutcome>;
  delete(env: string, app: string): Promise<void>;
  /**
   * The engine recorded the app's successful sync (after its postSync delivery hooks and inventory row). A target that
   * marks a sync unfinished until then (Kubernetes, see `LiveApp.unfinishedSync`) clears the mark.
   */
  synced?(env: string, app: string): void;
  logs(env: string, app: string): { replica: string; path: string }[];
  /** Runs a one-off command with the app's current release and environment (`keelson run`); absent when unsupported. */
  runOnce?(env: string, app: string, argv: string[], io: { sink: RunSink; signal?: AbortSignal; timeoutMs?: number }): Promise<RunResult>;
  /**
   * Runs a deploy hook's `exec` step where the app runs (Kubernetes: a Job from the pod template of `spec`, else of
   * the live app); absent or resolving undefined: a local process.
   */
  hookExec?(r: HookExecRequest): Promise<{ ok: boolean; message: string; output: string } | undefined>;
  /** How many apps of an environment the engine applies at once (default 4); targets whose apply mostly waits raise it. */
  concurrencyOf?(env: string): number | undefined;
  /** Runs a Helm chart's test hooks against the deployed app (`keelson test`); absent when unsupported. */
  helmTests?(app: DesiredApp, ctx: ApplyContext): Promise<HelmTestReport>;
  /** Per-object server-side difference of an app (targets that manage objects); absent when unsupported. */
  diff?(app: DesiredApp, ctx: ApplyContext): Promise<ObjectDiff[]>;
  /**
   * An app the target knows only from live objects it adopted (`LiveApp.adopted`): when they are all as `app`
   * declares, records them as this sync's and resolves its outcome (nothing written, no hook of any kind run, as for an
   * app already in sync); undefined otherwise, and the engine applies the app as usual.
   */
  settleAdopted?(app: DesiredApp, ctx: ApplyContext): Promise<ApplyOutcome | undefined>;
}
