/**
 * Each Kubernetes environment's status, mirrored to a `KeelsonEnvironment` (keelson.dev/v1alpha1) named after the
 * environment in its namespace, so `kubectl get kenv -A` shows it. Only the engine that holds the environment's claim
 * writes it; a standby never does. Writes follow the event bus, at most once per `debounceMs` per environment (per
 * `syncingMs` while a sync of it is under way: a thousand apps syncing change its content all the time, and every
 * write is a server-side apply of the whole list), and only when the content changed. It is a mirror: a failure is logged and never touches a sync. Without the CRD
 * (deploy/kubernetes/keelsonenvironment-crd.yaml) it logs once how to install it and does nothing else.
 */
import type { EventBus } from '../../core/events.js';
import type { TargetSpec } from '../../core/model.js';
import type { HealthCode } from '../../core/types.js';
import { errorMessage } from '../../core/errors.js';
import type { EnvironmentStatusView } from '../../engine/engine.js';
import type { Logger } from '../../log.js';
// Types only: `keelson up` with local environments only never loads the Kubernetes client.
import type { Cluster, KubeClient } from './client.js';
import { LABEL_MANAGED_BY, type KObject } from './objects.js';

export const MIRROR_API_VERSION = 'keelson.dev/v1alpha1';
export const MIRROR_KIND = 'KeelsonEnvironment';
const FIELD_MANAGER = 'keelson-status';
const REQUEST_TIMEOUT_MS = 10_000;
export const CRD_INSTALL_HINT =
  'install the CRD to see environments with `kubectl get keelsonenvironments -A`: kubectl apply -f deploy/kubernetes/keelsonenvironment-crd.yaml (the kustomize base and the Helm chart include it)';

export interface MirrorStatus {
  revision: string;
  shortRevision: string;
  sync: string;
  health: string;
  appsReady: string;
  apps: { name: string; version: string; sync: string; health: string; message: string }[];
  observedAt: string;
  engine: string;
}

export interface StatusMirrorOptions {
  bus: EventBus;
  log: Logger;
  /** The environment's status as the API shows it (secrets masked); undefined when the environment is gone. */
  status: (env: string) => Promise<EnvironmentStatusView | undefined>;
  specOf: (env: string) => TargetSpec | undefined;
  /** Whether this engine holds the environment's claim now. */
  mayWrite: (env: string) => boolean;
  /** This engine's identity, written as `status.engine`. */
  engine: string;
  /** A client for the environment's cluster (default: Keelson's own client, loaded on first use). */
  connect?: (spec: { namespace: string; kubeconfig?: string; context?: string; impersonate?: string }) => Promise<Cluster>;
  debounceMs?: number;
  /** The least time between two writes of an environment while a sync of it is under way (default 5 s). */
  syncingMs?: number;
  /**
   * Every environment seen is looked at again this often (default 30 s): a change no event announces (a takeover with
   * nothing to sync, an engine restarted on a synced environment) shows within it. Unchanged content is not written.
   */
  refreshMs?: number;
  /** The resource's group/version (default `keelson.dev/v1alpha1`; tests use a group of their own). */
  apiVersion?: string;
}

const healthOrder: HealthCode[] = ['Degraded', 'Missing', 'Progressing', 'Suspended', 'Unknown', 'Healthy'];

/** The mirrored status of an environment (pure; `observedAt` and `engine` are added by the caller). */
export function mirrorStatusOf(view: EnvironmentStatusView): Omit<MirrorStatus, 'observedAt' | 'engine'> {
  const apps = view.apps.map((a) => ({ name: a.name, version: a.version ?? '', sync: a.sync, health: a.health, message: a.message }));
  const syncs = apps.map((a) => a.sync);
  const sync = view.error ? 'Failed' : syncs.includes('Failed') ? 'Failed' : syncs.includes('OutOfSync') ? 'OutOfSync' : syncs.includes('Unknown') || !view.revision ? 'Unknown' : 'Synced';
  const health = apps.length ? healthOrder.find((h) => apps.some((a) => a.health === h)) ?? 'Unknown' : 'Healthy';
  const ready = apps.filter((a) => a.sync === 'Synced' && a.health === 'Healthy').length;
  return { revision: view.revision ?? '', shortRevision: (view.revision ?? '').slice(0, 12), sync, health, appsReady: `${ready}/${apps.length}`, apps };
}

export class StatusMirror {
  private readonly debounceMs: number;
  private readonly syncingMs: number;
  /** Environments whose sync is under way (between `sync.started` and `sync.completed`). */
  private readonly syncing = new Set<string>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly lastAt = new Map<string, number>();
  /** What was last written per environment (without observedAt): the same content is not written again. */
  private readonly written = new Map<string, string>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly clusters = new Map<string, { key: string; cluster: Promise<Cluster> }>();
  private readonly warned = new Set<string>();
  private unsubscribe?: () => void;
  private refresher?: NodeJS.Timeout;
  /** Kubernetes environments seen: looked at again every `refreshMs`. */
  private readonly known = new Set<string>();
  private stopped = false;

  constructor(private readonly o: StatusMirrorOptions) {
    this.debounceMs = o.debounceMs ?? 1_000;
    this.syncingMs = Math.max(this.debounceMs, o.syncingMs ?? 5_000);
  }

  start(): void {
    this.unsubscribe = this.o.bus.subscribe((e) => {
      const env = (e as { env?: unknown }).env;
      if (typeof env !== 'string' || !env || e.type === 'replica.ready') return;
      if (e.type === 'sync.started') this.syncing.add(env);
      if (e.type === 'sync.completed' && this.syncing.delete(env)) {
        // The sync's outcome goes out one `debounceMs` after the last write, not one `syncingMs`.
        const timer = this.timers.get(env);
        if (timer) clearTimeout(timer);
        this.timers.delete(env);
      }
      this.schedule(env);
    });
    this.refresher = setInterval(() => {
      for (const env of this.known) this.schedule(env);
    }, this.o.refreshMs ?? 30_000);
    this.refresher.unref();
  }

  /**
   * This engine just took the environment's claim: write its status soon even if this engine wrote the same content
   * before (another engine may have written since).
   */
  claimed(env: string): void {
    this.written.delete(env);
    this.schedule(env);
  }

  /** Writes the environment's status soon (debounced). */
  schedule(env: string): void {
    if (this.stopped || this.timers.has(env)) return;
    const spec = this.o.specOf(env);
    if (!spec || !('kubernetes' in spec)) return;
    this.known.add(env);
    const gap = this.syncing.has(env) ? this.syncingMs : this.debounceMs;
    const wait = Math.max(0, (this.lastAt.get(env) ?? 0) + gap - Date.now());
    const timer = setTimeout(() => {
      this.timers.delete(env);
      this.lastAt.set(env, Date.now());
      // One write at a time per environment; one that comes while another runs is scheduled after it.
      const prev = this.running.get(env) ?? Promise.resolve();
      const next = prev.then(() => this.flush(env));
      this.running.set(env, next);
      void next.finally(() => this.running.get(env) === next && this.running.delete(env));
    }, wait);
    timer.unref();
    this.timers.set(env, timer);
  }

  /** Writes the environment's status now if this engine holds its claim and it changed; never throws. */
  async flush(env: string): Promise<void> {
    try {
      await this.write(env);
    } catch (err) {
      this.warnOnce(`${env}\0${errorMessage(err)}`, { env, err: errorMessage(err) }, 'could not write the environment status resource (KeelsonEnvironment); syncs are not affected');
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    clearInterval(this.refresher);
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    await Promise.allSettled([...this.running.values()]);
    for (const c of this.clusters.values()) void c.cluster.then((x) => x.release(), () => {});
    this.clusters.clear();
  }

  private async write(env: string): Promise<void> {
    if (this.stopped) return;
    if (!this.o.mayWrite(env)) {
      this.written.delete(env); // only the claim holder writes; the next holder may write something else
      return;
    }
    const spec = this.o.specOf(env);
    if (!spec || !('kubernetes' in spec)) return;
    const api = (await this.clusterFor(env, spec.kubernetes)).api;
    const apiVersion = this.o.apiVersion ?? MIRROR_API_VERSION;
    // Without the CRD there is nothing to write: neither the status is gathered nor discovery asked again before the
    // next refresh (a thousand apps syncing publish events all the time).
    if (!(await this.served(api, apiVersion, env))) return;
    const view = await this.o.status(env);
    if (!view || (!view.revision && !view.error)) return; // nothing known yet (not rendered since the engine started)
    const content = mirrorStatusOf(view);
    const namespace = spec.kubernetes.namespace;
    const key = JSON.stringify([namespace, content]);
    if (this.written.get(env) === key) return;
    if (!this.o.mayWrite(env)) return; // the claim may have gone while status was gathered
    const status: MirrorStatus = { ...content, observedAt: new Date().toISOString(), engine: this.o.engine };
    await applyMirror(api, apiVersion, namespace, env, status);
    this.written.set(env, key);
    this.o.log.debug({ env, namespace, sync: status.sync, health: status.health }, 'environment status mirrored');
  }

  /** When each client last found the CRD missing: looked up again by the first write after half a `refreshMs`. */
  private readonly missingSince = new WeakMap<KubeClient, number>();

  /** Whether the cluster serves the KeelsonEnvironment kind (discovery, cached by the client while served). */
  private async served(api: KubeClient, apiVersion: string, env: string): Promise<boolean> {
    const missing = this.missingSince.get(api);
    if (missing !== undefined && Date.now() - missing < (this.o.refreshMs ?? 30_000) / 2) return false;
    if (await api.resourceOf(apiVersion, MIRROR_KIND)) {
      this.missingSince.delete(api);
      return true;
    }
    api.forget(apiVersion); // looked up again later: the CRD may be installed meanwhile
    this.missingSince.set(api, Date.now());
    this.warnOnce(`crd\0${api.conn.server}`, { env, server: api.conn.server }, `the KeelsonEnvironment CRD is not installed; environment status is not mirrored to the cluster: ${CRD_INSTALL_HINT}`);
    return false;
  }

  private clusterFor(env: string, spec: { namespace: string; kubeconfig?: string; context?: string; impersonate?: string }): Promise<Cluster> {
    const key = JSON.stringify(spec);
    const cur = this.clusters.get(env);
    if (cur && cur.key === key) return cur.cluster;
    if (cur) void cur.cluster.then((c) => c.release(), () => {});
    const connect = this.o.connect ?? (async (s) => (await import('./client.js')).connect(s));
    const cluster = connect(spec);
    cluster.catch(() => this.clusters.get(env)?.cluster === cluster && this.clusters.delete(env));
    this.clusters.set(env, { key, cluster });
    return cluster;
  }

  private warnOnce(key: string, fields: Record<string, unknown>, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.o.log.warn(fields, message);
  }
}

/** Server-side applies the KeelsonEnvironment (spec `{}`) and then its status subresource. */
async function applyMirror(api: KubeClient, apiVersion: string, namespace: string, env: string, status: MirrorStatus): Promise<void> {
  const obj: KObject = {
    apiVersion,
    kind: MIRROR_KIND,
    metadata: { name: env, namespace, labels: { [LABEL_MANAGED_BY]: 'keelson', 'keelson.dev/environment': env } },
    spec: {},
  };
  const path = await api.pathOf(obj);
  const signal = () => AbortSignal.timeout(REQUEST_TIMEOUT_MS);
  const patch = (p: string, body: unknown) =>
    api.request('PATCH', p, { body, contentType: 'application/apply-patch+yaml', query: { fieldManager: FIELD_MANAGER, force: true }, signal: signal() });
  try {
    await patch(`${path}/status`, { apiVersion, kind: MIRROR_KIND, metadata: { name: env, namespace }, status });
  } catch (err) {
    if ((err as { code?: unknown }).code !== 404) throw err;
    // Not there yet: create it, then its status (a status apply never creates the object).
    await patch(path, obj);
    await patch(`${path}/status`, { apiVersion, kind: MIRROR_KIND, metadata: { name: env, namespace }, status });
  }
}
