/**
 * Blue/green and canary on the local target: the new version runs as a second replica set beside the stable one,
 * and the proxy shares traffic between the two by weight (sticky per client for a canary). The steps come from the
 * target-neutral step machine (src/rollout/); this file is only the local driver. Where a rollout is goes to the
 * store at every step (the shared checkpoint record, rollout-state.ts), so that an engine stopped in the middle resumes it where it was.
 */
import type { DesiredApp } from '../../core/model.js';
import { strategyOf } from '../../core/rollout.js';
import { appKey } from '../../core/types.js';
import type { EventBus } from '../../core/events.js';
import { execMeasurement, httpMeasurement } from '../../rollout/checks.js';
import { runRollout, type RolloutDriver } from '../../rollout/runner.js';
import { planRollout } from '../../rollout/steps.js';
import { baseEnv } from './process.js';
import { identityEnv } from './isolation.js';
import type { StatsView } from './proxy/protocol.js';
import { planDigest } from '../../rollout/steps.js';
import { revertToStable } from './revert.js';
import { markFinished, splitOf, type LocalRolloutCheckpoints, type RolloutRecord, type RolloutRecordInput } from './rollout-state.js';
import { groupOf, type ReleaseRef, type RolloutResult, type Supervisor } from './supervisor.js';

export interface ProgressiveDeps {
  supervisor: Supervisor;
  bus: EventBus;
  /** The proxy's request counters (per route and backend group). */
  stats: () => Promise<StatsView>;
  /** Each rollout's state, kept between steps so that a restarted engine resumes it. */
  states: LocalRolloutCheckpoints;
}

export interface ProgressiveOptions {
  /** Aborted when a newer revision supersedes the rollout: it is aborted. */
  signal?: AbortSignal;
  /** Aborted when the engine stops: the rollout is left as it is, to be resumed. */
  interrupt?: AbortSignal;
  /** An interrupted rollout of the same spec to resume (see `takeOverInterrupted` in rollout-state.ts). */
  resume?: RolloutRecord;
}

/**
 * Whether `spec` goes out progressively: a blue/green or canary strategy, an app already running another template
 * (a first deploy just starts), and new processes needed (a forced restart of the same template rolls).
 */
export function isProgressive(sup: Supervisor, spec: DesiredApp, template: string, restartAll: boolean): boolean {
  if (strategyOf(spec) === 'rolling' || restartAll) return false;
  const live = sup.appStatusOf(spec.env, spec.name);
  return live !== undefined && live.template !== template && live.replicas.ready > 0;
}

/** Cookie that keeps a client on one version during a canary. */
export function stickyCookieName(env: string, app: string): string {
  return `keelson-${env}-${app}`;
}

export async function progressiveRollout(d: ProgressiveDeps, spec: DesiredApp, release: ReleaseRef, revision: string, o: ProgressiveOptions = {}): Promise<RolloutResult> {
  const sup = d.supervisor;
  const key = appKey(spec.env, spec.name);
  const rollout = spec.rollout!;
  const sticky = rollout.strategy === 'canary' && rollout.canary.stickySessions ? stickyCookieName(spec.env, spec.name) : undefined;
  const resume = o.resume?.checkpoint;
  // Resumed: the new set's replicas were adopted and already take their share.
  const { run, previous } = await sup.beginSet(spec, release, revision, sticky, resume?.weight ?? 0);
  if (!previous) throw new Error(`${key}: a progressive rollout needs a running version`);
  const canary = groupOf(run.template);
  const split = (weight: number) => splitOf(previous.template, run.template, weight, sticky);
  const steps = planRollout(rollout, spec.replicas);
  const record: Omit<RolloutRecordInput, 'checkpoint'> = {
    env: spec.env,
    app: spec.name,
    revision,
    strategy: rollout.strategy === 'canary' ? 'canary' : 'blueGreen',
    from: previous.spec.version,
    to: spec.version,
    template: run.template,
    plan: planDigest(steps),
    detail: { stable: previous.template, stableRelease: previous.release, releaseId: release.id, spec, split: split(0) },
  };

  let logTail: string[] = [];
  const driver: RolloutDriver = {
    async scaleNew(replicas, deadline, sig) {
      await sup.scaleSet(run, replicas);
      if (await sup.waitSetReady(run, replicas, deadline, sig)) return { ok: true };
      logTail = await sup.lastLogLines(spec.env, spec.name, 10);
      const st = sup.appStatusOf(spec.env, spec.name);
      const stuck = st?.instances.find((i) => i.release === release.id && !i.ready);
      return { ok: false, message: sig.aborted ? 'cancelled' : `not ready within ${spec.progressDeadlineSeconds}s${stuck?.message ? ` (${stuck.message})` : ''}` };
    },
    setWeight: (weight) => sup.setTraffic(key, split(weight)),
    async newSetStats() {
      const s = await d.stats();
      return s.routes.find((r) => r.key === key)?.groups.find((g) => g.group === canary);
    },
    async check(metric, sig) {
      const timeoutMs = metric.timeoutSeconds * 1000;
      const ports = sup.readyPortsOf(run);
      if (metric.http) {
        if (metric.http.url) return httpMeasurement(metric.http, metric.http.url, timeoutMs, sig);
        if (ports.length === 0) return { phase: 'Error', message: 'no ready replica of the new version to check' };
        return httpMeasurement(metric.http, `http://127.0.0.1:${ports[0]}${metric.http.path}`, timeoutMs, sig);
      }
      const env = {
        ...baseEnv(),
        ...spec.vars,
        KEELSON_ENV: spec.env,
        KEELSON_APP: spec.name,
        KEELSON_VERSION: spec.version,
        KEELSON_STABLE_VERSION: previous.spec.version,
        KEELSON_REVISION: revision,
        ...(ports.length ? { KEELSON_CANARY_URL: `http://127.0.0.1:${ports[0]}` } : {}),
        ...(spec.port ? { KEELSON_PUBLIC_URL: `http://127.0.0.1:${spec.port}` } : {}),
      };
      // Like its exec probes, an app's analysis command runs as the app's user.
      let runAs;
      try {
        runAs = await sup.runAsOf(spec);
      } catch (err) {
        return { phase: 'Error', message: (err as Error).message };
      }
      const ids = runAs ? { uid: runAs.uid, gid: runAs.gid } : {};
      return execMeasurement(metric.exec!, { cwd: release.dir, env: { ...env, ...identityEnv(runAs) }, timeoutMs, signal: sig, ...ids });
    },
    async promote() {
      // The stable set leaves the table first (drained), then the weights go: no request lands on it again.
      await sup.setTraffic(key, split(100));
      await sup.stopSet(previous);
      await sup.settle(run);
    },
    async abort() {
      // Weight first (one atomic table change), the stable set at full size and ready, then the new set drains away
      // and the stable set is the app again (revert.ts).
      await revertToStable(sup, previous, { split: split(0) });
    },
  };

  const outcome = await runRollout(steps, driver, {
    env: spec.env,
    app: spec.name,
    revision,
    strategy: rollout.strategy,
    from: previous.spec.version,
    to: spec.version,
    progressDeadlineSeconds: spec.progressDeadlineSeconds,
    bus: d.bus,
    signal: o.signal,
    interrupt: o.interrupt,
    resume,
    checkpoint: (c) => d.states.save({ ...record, detail: { ...record.detail, split: split(c.aborting ? 0 : c.weight) }, checkpoint: c }),
  });
  if ('interrupted' in outcome) return { ok: false, message: outcome.message, rolledBack: false, logTail: [], interrupted: true };
  // Promoted: the record stays, marked finished, until the engine recorded the sync (LocalTarget.synced).
  if (outcome.ok) markFinished(d.states, spec.env, spec.name);
  else d.states.clear(spec.env, spec.name);
  return outcome.ok ? outcome : { ...outcome, logTail };
}
