/**
 * Blue/green and canary on Kubernetes: the Kubernetes RolloutDriver of the target-neutral step machine
 * (src/rollout/). An `image` app with a blueGreen or canary strategy is rendered as a Deployment per pod template,
 * `<app>-<template hash>`, whose selector and pods carry `keelson.dev/set: <hash>`. Blue/green: the Service selects
 * one set by that label, and the switch is one patch of its (atomic) selector. Canary: the Service selects both sets
 * and the share of traffic is the share of ready replicas (canary = ceil(replicas × weight / 100), at least 1 while
 * the weight is above 0; the stable set keeps the rest, at least 1 until the weight reaches 100).
 */
import type { DesiredApp } from '../../core/model.js';
import { strategyOf, type AnalysisSpec } from '../../core/rollout.js';
import { errorMessage, TerminalError, TransientError } from '../../core/errors.js';
import type { EventBus } from '../../core/events.js';
import { httpMeasurement } from '../../rollout/checks.js';
import { runRollout, type RolloutCheckpoint, type RolloutDriver, type RolloutOutcome } from '../../rollout/runner.js';
import { canaryReplicas, planDigest, planRollout } from '../../rollout/steps.js';
import type { ObjectResult } from './apply.js';
import { apiMessage, isTransient, type Cluster } from './client.js';
import { ANNOTATION_APPLIED, hashOf, withOwnership, type KObject } from './objects.js';
import { describeJobEnd, runPodJob } from './pod-job.js';
import type { ObjectWatch } from './watch.js';

export const LABEL_SET = 'keelson.dev/set';

export function isProgressiveApp(app: DesiredApp): boolean {
  return strategyOf(app) !== 'rolling' && (!!app.image || !!app.manifests);
}

/** Whether a Service selects a Deployment's pods (its selector, set label apart, is within the pod labels). */
export function selects(service: KObject, dep: KObject): boolean {
  const selector: Record<string, string> = (service as any).spec?.selector ?? {};
  const labels: Record<string, string> = (dep as any).spec?.template?.metadata?.labels ?? {};
  const keys = Object.keys(selector).filter((k) => k !== LABEL_SET);
  return keys.length > 0 && keys.every((k) => labels[k] === selector[k]);
}

/** Analyses of an app's rollout; `requests` metrics need Keelson's proxy, which Kubernetes has not. */
function analysesOf(app: DesiredApp): AnalysisSpec[] {
  const r = app.rollout;
  if (!r || r.strategy === 'rolling') return [];
  if (r.strategy === 'blueGreen') return [r.blueGreen.prePromotionAnalysis, r.blueGreen.postPromotionAnalysis].filter((a): a is AnalysisSpec => !!a);
  return r.canary.steps.flatMap((s) => ('analysis' in s ? [s.analysis] : []));
}

/**
 * The app's rendered objects as sets: its Deployment renamed `<name>-<hash>` with the set label, the Service that
 * selects its pods selecting that set (blue/green) or every set (canary). An app of plain manifests qualifies with
 * exactly one Deployment (and, for blue/green, exactly one Service selecting it). Throws for what Kubernetes cannot
 * do (request metrics) and for manifests that do not say which Deployment and Service to split.
 */
export function asSets(app: DesiredApp, objects: KObject[]): KObject[] {
  if (strategyOf(app) === 'rolling') return objects;
  for (const a of analysesOf(app))
    for (const m of a.metrics)
      if (m.requests)
        throw new TerminalError(`app ${app.name}: analysis metric "${m.name}" uses "requests" (Keelson's proxy metrics), which the Kubernetes target does not have; use an "http" or "exec" check`);
  const deployments = objects.filter((o) => o.kind === 'Deployment');
  if (app.manifests && deployments.length !== 1) {
    throw new TerminalError(`app ${app.name}: rollout.strategy ${strategyOf(app)} needs exactly one Deployment in its manifests, found ${deployments.length}${deployments.length ? ` (${deployments.map((d) => d.metadata.name).join(', ')})` : ''}; split the app, or use strategy: rolling`);
  }
  const dep = deployments[0];
  if (!dep) return objects;
  const services = objects.filter((o) => o.kind === 'Service' && selects(o, dep));
  if (app.manifests && app.rollout?.strategy === 'blueGreen' && services.length !== 1) {
    throw new TerminalError(`app ${app.name}: blue/green switches the one Service that selects Deployment ${dep.metadata.name}'s pods; found ${services.length}${services.length ? ` (${services.map((s) => s.metadata.name).join(', ')})` : ''}`);
  }
  const set = hashOf((dep as any).spec.template).slice(0, 10);
  return objects.map((o) => {
    if (o === dep) {
      const d = structuredClone(o) as any;
      d.metadata.name = `${app.manifests ? dep.metadata.name : app.name}-${set}`;
      d.spec.selector.matchLabels[LABEL_SET] = set;
      d.spec.template.metadata.labels[LABEL_SET] = set;
      return d;
    }
    if (o === services[0] && app.rollout?.strategy === 'blueGreen') {
      const s = structuredClone(o) as any;
      s.spec.selector = { ...s.spec.selector, [LABEL_SET]: set };
      return s;
    }
    return o;
  });
}

/** The set label of a Deployment. */
export function setOf(dep: KObject | undefined): string | undefined {
  return (dep as any)?.spec?.selector?.matchLabels?.[LABEL_SET];
}

/** An owned object changed after ownership was stamped: stamp it again so its applied hash is its own. */
export function restamp(o: KObject, env: string, app: string): KObject {
  const annotations = { ...o.metadata.annotations };
  delete annotations[ANNOTATION_APPLIED];
  const { annotations: _a, ...metadata } = o.metadata;
  return withOwnership({ ...o, metadata: Object.keys(annotations).length ? { ...metadata, annotations } : metadata }, env, app);
}

export interface ProgressiveDeps {
  cluster: Cluster;
  watch: ObjectWatch;
  bus: EventBus;
  /** Server-side apply of objects (force), as the target does it. */
  applyAll: (objects: KObject[]) => Promise<ObjectResult[]>;
  /** Deletes one object (its absence is fine). */
  remove: (o: KObject) => Promise<void>;
}

export interface ProgressivePlan {
  stable: KObject;
  next: KObject;
  service?: KObject;
  /** Everything else the app declares (applied first, as is). */
  others: KObject[];
}

/**
 * A progressive rollout is needed when the app runs another set of the same app (a first deploy, a change of
 * replicas only, or a switch from a rolling Deployment just applies).
 */
export function progressivePlan(app: DesiredApp, resources: KObject[], previous: KObject[] | undefined, watch: ObjectWatch): ProgressivePlan | undefined {
  if (!isProgressiveApp(app) || !previous) return undefined;
  const next = resources.find((o) => o.kind === 'Deployment' && setOf(o));
  const stable = previous.find((o) => o.kind === 'Deployment' && setOf(o));
  if (!next || !stable || stable.metadata.name === next.metadata.name) return undefined;
  const live = watch.get(stable) as any;
  if (!live || !(live.status?.readyReplicas > 0)) return undefined;
  const service = resources.find((o) => o.kind === 'Service' && selects(o, next));
  return { stable, next, service, others: resources.filter((o) => o !== next && o !== service) };
}

const withReplicas = (o: KObject, n: number, env: string, app: string): KObject => restamp({ ...o, spec: { ...(o as any).spec, replicas: n } } as KObject, env, app);

function withClientIpAffinity(service: KObject, env: string, app: string): KObject {
  return restamp({ ...service, spec: { ...(service as any).spec, sessionAffinity: 'ClientIP' } } as KObject, env, app);
}

/** The Service's selector pointed at one set (blue/green) or every set (canary: no set label). */
function serviceFor(service: KObject, set: string | undefined, env: string, app: string): KObject {
  const s = structuredClone(service) as any;
  const { [LABEL_SET]: _drop, ...common } = s.spec.selector ?? {};
  s.spec.selector = set ? { ...common, [LABEL_SET]: set } : common;
  return restamp(s, env, app);
}

/**
 * Runs the rollout from `plan.stable` to `plan.next`; resolves with the objects the app is made of afterwards (the
 * new set on success, the stable set after an abort) and the outcome. `record` is called with both Deployments
 * before the new set is created, so prune and a restarted engine know both.
 */
export async function kubernetesRollout(
  d: ProgressiveDeps,
  app: DesiredApp,
  plan: ProgressivePlan,
  o: {
    revision: string;
    fromVersion: string;
    signal?: AbortSignal;
    record: (objects: KObject[]) => void;
    /** The engine stopping: the rollout stops waiting and leaves both Deployments as they are. */
    interrupt?: AbortSignal;
    /** Where an interrupted run stopped, and where to write the next checkpoints (the target's store). */
    saved?: SavedRollout;
    save?: (s: SavedRollout) => void;
  },
): Promise<{ outcome: RolloutOutcome; objects: KObject[]; results: ObjectResult[] }> {
  const rollout = app.rollout!;
  const bg = rollout.strategy === 'blueGreen';
  // An app of manifests keeps its Deployment's own replica count unless the environment set one.
  const total = app.manifests ? ((plan.next as any).spec?.replicas ?? 1) : app.replicas;
  const { env, name } = app;
  const stableSet = setOf(plan.stable)!;
  const nextSet = setOf(plan.next)!;
  const results: ObjectResult[] = [];
  const apply = async (objs: KObject[]) => {
    const r = await d.applyAll(objs).catch((err) => {
      // The API server unreachable, or 429/5xx: the rollout stops where it is, to be resumed by the retry.
      throw isTransient(err) && !(err instanceof TransientError) ? new TransientError(apiMessage(err), { cause: err }) : err;
    });
    results.push(...r);
    const failed = r.filter((x) => x.action === 'failed');
    if (failed.length) throw new Error(failed.map((f) => f.message).join('; '));
  };
  const stableService = plan.service && serviceFor(plan.service, bg ? stableSet : undefined, env, name);
  const nextService = plan.service && serviceFor(plan.service, bg ? nextSet : undefined, env, name);
  // A sticky canary: kube-proxy keeps each client IP on one pod, hence on one version, until the rollout ends
  // (promote and abort apply the Service as declared again).
  const rolloutService = stableService && rollout.strategy === 'canary' && rollout.canary.stickySessions ? withClientIpAffinity(stableService, env, name) : stableService;
  let stableDesired = withReplicas(plan.stable, total, env, name);
  let nextDesired = withReplicas(plan.next, 0, env, name);

  // Recorded as declared (a rollback or a restarted engine must not keep the rollout's affinity).
  o.record([...plan.others, ...(stableService ? [stableService] : []), stableDesired, nextDesired]);
  await apply([...plan.others, ...(rolloutService ? [rolloutService] : [])]);

  const driver: RolloutDriver = {
    async scaleNew(replicas, deadline, signal) {
      nextDesired = withReplicas(plan.next, replicas, env, name);
      await apply([nextDesired]);
      return waitReady(d.watch, nextDesired, replicas, deadline, signal);
    },
    async setWeight(weight) {
      if (bg) {
        if (stableService && nextService) await apply([weight >= 100 ? nextService : stableService]);
        return;
      }
      const canary = weight >= 100 ? 0 : weight <= 0 ? total : Math.max(1, total - canaryReplicas(total, weight));
      stableDesired = withReplicas(plan.stable, canary, env, name);
      await apply([stableDesired]);
    },
    newSetStats: async () => undefined,
    async check(metric, signal) {
      const timeoutMs = metric.timeoutSeconds * 1000;
      if (metric.http) {
        if (metric.http.url) return httpMeasurement(metric.http, metric.http.url, timeoutMs, signal);
        const ip = await readyPodIp(d, nextDesired);
        const port = app.port ?? (nextDesired as any).spec?.template?.spec?.containers?.[0]?.ports?.[0]?.containerPort ?? 80;
        if (!ip) return { phase: 'Error', message: 'no ready pod of the new version to check' };
        return httpMeasurement(metric.http, `http://${ip}:${port}${metric.http.path}`, timeoutMs, signal);
      }
      const r = await runPodJob({
        cluster: d.cluster,
        watch: d.watch,
        env,
        app: name,
        namespace: plan.next.metadata.namespace!,
        workload: d.watch.get(nextDesired) ?? nextDesired,
        argv: metric.exec!.command,
        vars: { KEELSON_ENV: env, KEELSON_APP: name, KEELSON_VERSION: app.version, KEELSON_STABLE_VERSION: o.fromVersion, KEELSON_REVISION: o.revision },
        timeoutMs,
        signal,
      }).catch((err: Error) => err);
      if (r instanceof Error) return { phase: 'Error', message: `exec check could not run: ${r.message}` };
      const tail = r.output.trim() ? `: ${r.output.trim().split('\n').slice(-3).join(' | ')}` : '';
      if (r.state === 'succeeded') return { phase: 'Successful', message: `${describeJobEnd(r, timeoutMs)}${tail}` };
      if (r.state === 'failed' && (r.code === 1 || r.code === null)) return { phase: 'Failed', message: `${describeJobEnd(r, timeoutMs)}${tail}` };
      return { phase: 'Error', message: `${describeJobEnd(r, timeoutMs)}${tail}` };
    },
    async promote() {
      if (nextService) await apply([nextService]);
      await d.remove(plan.stable);
    },
    async abort() {
      // Stable first: back to its full size and all traffic, and ready, before the new set goes; never fewer ready
      // replicas than the stable set had. A scale-back that fails keeps the new set (the checkpoint says "aborting"):
      // the retry finishes the abort.
      stableDesired = withReplicas(plan.stable, total, env, name);
      await apply([stableDesired, ...(stableService ? [stableService] : [])]).catch((err) => {
        throw new TransientError(`${scaleBackFailed(plan, total)}: ${errorMessage(err)}`, { cause: err });
      });
      const ready = await waitReady(d.watch, stableDesired, total, Date.now() + app.progressDeadlineSeconds * 1000, new AbortController().signal);
      if (!ready.ok) throw new TransientError(`${scaleBackFailed(plan, total)}: ${ready.message}`);
      await d.remove(plan.next);
    },
  };

  const steps = planRollout(rollout, total);
  const digest = planDigest(steps);
  const outcome = await runRollout(steps, driver, {
    env,
    app: name,
    revision: o.revision,
    strategy: rollout.strategy,
    from: o.fromVersion,
    to: app.version,
    progressDeadlineSeconds: app.progressDeadlineSeconds,
    bus: d.bus,
    signal: o.signal,
    interrupt: o.interrupt,
    resume: o.saved?.plan === digest ? o.saved.checkpoint : undefined,
    checkpoint: (checkpoint) => o.save?.({ plan: digest, checkpoint }),
  });
  const objects = outcome.ok
    ? [...plan.others, ...(nextService ? [nextService] : []), withReplicas(plan.next, total, env, name)]
    : [...plan.others, ...(stableService ? [stableService] : []), withReplicas(plan.stable, total, env, name)];
  return { outcome, objects, results };
}

/** Why an abort keeps the new set: the stable one is not back to its size (and the retry finishes the abort). */
export function scaleBackFailed(plan: Pick<ProgressivePlan, 'stable' | 'next'>, total: number): string {
  return `the stable set ${plan.stable.metadata.name} could not be brought back to ${total} ready replicas, so ${plan.next.metadata.name} is kept (serving) until it is; retrying`;
}

/** A Kubernetes rollout's last checkpoint, kept in the store so that the next engine resumes it at the same step. */
export interface SavedRollout {
  plan: string;
  checkpoint: RolloutCheckpoint;
}

/** Resolves when the Deployment has `replicas` ready pods of its current generation, or why not. */
function waitReady(watch: ObjectWatch, dep: KObject, replicas: number, deadline: number, signal: AbortSignal): Promise<{ ok: true } | { ok: false; message: string }> {
  return new Promise((resolve) => {
    const check = () => {
      const live = watch.get(dep) as any;
      if (!live) return;
      const st = live.status ?? {};
      if ((st.conditions ?? []).some((c: { reason?: string }) => c.reason === 'ProgressDeadlineExceeded')) return done({ ok: false, message: `${dep.metadata.name}: progress deadline exceeded` });
      if ((st.observedGeneration ?? 0) >= (live.metadata.generation ?? 0) && (st.readyReplicas ?? 0) >= replicas && (st.updatedReplicas ?? 0) >= replicas) done({ ok: true });
    };
    const timer = setTimeout(() => {
      const st = (watch.get(dep) as any)?.status ?? {};
      done({ ok: false, message: `${dep.metadata.name}: ${st.readyReplicas ?? 0} of ${replicas} replicas ready at the deadline` });
    }, Math.max(0, deadline - Date.now()));
    const onAbort = () => done({ ok: false, message: 'cancelled' });
    const off = watch.onObjects([dep], check);
    signal.addEventListener('abort', onAbort, { once: true });
    function done(r: { ok: true } | { ok: false; message: string }) {
      clearTimeout(timer);
      off();
      signal.removeEventListener('abort', onAbort);
      resolve(r);
    }
    check();
  });
}

async function readyPodIp(d: ProgressiveDeps, dep: KObject): Promise<string | undefined> {
  const selector = Object.entries((dep as any).spec.selector.matchLabels as Record<string, string>).map(([k, v]) => `${k}=${v}`).join(',');
  const pods: any[] = await d.cluster.api.list('v1', 'Pod', { namespace: dep.metadata.namespace, labelSelector: selector });
  return pods.find((p) => (p.status?.conditions ?? []).some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True'))?.status?.podIP;
}
