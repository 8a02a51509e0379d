/**
 * Carries out a rollout's steps (src/rollout/steps.ts) through a target's driver. Target-neutral: the local target
 * drives replica sets behind its proxy, Kubernetes would drive two Deployments. Every abort or automatic rollback
 * ends as a failure with its reason; only a full run of the steps succeeds. A run interrupted by the engine stopping
 * leaves everything as it is; given its last checkpoint, a later run resumes at the same step.
 */
import type { AnalysisMetric, AnalysisSpec } from '../core/rollout.js';
import { errorMessage, TransientError } from '../core/errors.js';
import type { EventBus, KeelsonEvent } from '../core/events.js';
import type { RequestStats } from '../targets/local/proxy/protocol.js';
import { analysisPhase, describeMetric, measureRequests, metricPhase, statsDelta, type AnalysisPhase, type Measurement } from './analysis.js';
import { describeStep, type RolloutStep } from './steps.js';

/** What a target does for each step. Each call is idempotent enough to be retried by a later reconcile. */
export interface RolloutDriver {
  /** Brings the new set to `replicas` ready replicas; false with a reason when the deadline passes or on abort. */
  scaleNew(replicas: number, deadline: number, signal: AbortSignal): Promise<{ ok: true } | { ok: false; message: string }>;
  /** Share (percent) of new requests sent to the new set, in effect when this resolves (atomic for 0 and 100). */
  setWeight(weight: number): Promise<void>;
  /** Cumulative counters of the requests the new set answered; undefined when it answered none yet. */
  newSetStats(): Promise<RequestStats | undefined>;
  /** One http or exec measurement of the new set. */
  check(metric: AnalysisMetric, signal: AbortSignal): Promise<Measurement>;
  /** The new set is the app: the stable set is scaled down. */
  promote(): Promise<void>;
  /** All traffic back to the stable set, the new set stopped. */
  abort(): Promise<void>;
}

/** Where a rollout is, handed out at every step transition so that it can be resumed after an engine restart. */
export interface RolloutCheckpoint {
  /** 0-based index of the step being run. */
  step: number;
  /** Share of new requests going to the new set, percent. */
  weight: number;
  /** promote-rollout --full was given: the remaining pauses and analyses are skipped. */
  full: boolean;
  /** When traffic switched to the new set (epoch ms): the scale-down delay counts from it. */
  switchedAt?: number;
  /** When the pause at `step` began (epoch ms): a timed pause resumes with what was left of it. */
  pausedAt?: number;
  /** The pause at `step` waits for promote-rollout. */
  untilPromoted?: boolean;
  /** Set once the rollout is being aborted, with why: an interrupted abort is finished, never resumed. */
  aborting?: string;
  /**
   * The rollout finished here (the new set is the app) and the engine has not recorded the sync yet: the record goes
   * when it has (`Target.synced`). An engine stopped in between comes back with the new set as the app, not the one
   * its own record names (local target).
   */
  finished?: boolean;
}

export interface RolloutContext {
  env: string;
  app: string;
  revision: string;
  strategy: string;
  /** Versions of the stable and the new set. */
  from: string;
  to: string;
  progressDeadlineSeconds: number;
  bus: EventBus;
  /** Aborted when a newer revision supersedes this rollout. */
  signal?: AbortSignal;
  /** Aborted when the engine stops: the run stops waiting and leaves both sets and the weights as they are. */
  interrupt?: AbortSignal;
  /** The checkpoint of an interrupted run of the same steps: this run resumes there (its analysis starts over). */
  resume?: RolloutCheckpoint;
  /** Called at every step transition (persist it to resume after a restart). */
  checkpoint?: (c: RolloutCheckpoint) => void;
}

export type RolloutOutcome =
  | { ok: true; message: string }
  | { ok: false; message: string; rolledBack: true }
  /**
   * The engine stopped mid-rollout, or (`transient`) the target could not be reached: nothing was rolled back, the
   * last checkpoint says where to resume.
   */
  | { ok: false; message: string; interrupted: true; transient?: true };

class Aborted extends Error {}

/** Runs the steps; resolves with the outcome (never throws for a failed rollout). */
export async function runRollout(steps: RolloutStep[], driver: RolloutDriver, ctx: RolloutContext): Promise<RolloutOutcome> {
  const { env, app, revision } = ctx;
  const publish = (e: KeelsonEvent) => ctx.bus.publish(e);
  const superseded = ctx.signal ?? new AbortController().signal;
  const interrupt = ctx.interrupt ?? new AbortController().signal;
  // Either one ends every wait; which one it was decides between an abort and leaving everything as it is.
  const signal = AbortSignal.any([superseded, interrupt]);
  const resume = ctx.resume;
  // Promotions are counted from the start, so one given just before a pause is not lost.
  let promotions = 0;
  let full = resume?.full ?? false;
  const wake = new Set<() => void>();
  const off = ctx.bus.subscribe((e) => {
    if (e.type !== 'rollout.promoteRequested' || e.env !== env || e.app !== app) return;
    promotions++;
    full ||= e.full;
    for (const w of wake) w();
  });
  const onAbort = () => {
    for (const w of wake) w();
  };
  signal.addEventListener('abort', onAbort);

  /** Waits for a promotion, `ms` (when given) or the abort; says which came first. */
  const waitFor = (ms: number | undefined, promotable: boolean): Promise<'promoted' | 'elapsed' | 'aborted'> =>
    new Promise((resolve) => {
      const check = () => {
        if (signal.aborted) return done('aborted');
        if (promotable && promotions > 0) {
          promotions--;
          return done('promoted');
        }
      };
      const timer = ms === undefined ? undefined : setTimeout(() => done('elapsed'), ms);
      const done = (r: 'promoted' | 'elapsed' | 'aborted') => {
        if (timer) clearTimeout(timer);
        wake.delete(check);
        resolve(r);
      };
      wake.add(check);
      check();
    });

  let at = resume?.step ?? 0;
  let weight = resume?.weight ?? 0;
  let switchedAt = resume?.switchedAt;
  const save = (extra: Partial<RolloutCheckpoint> = {}) =>
    ctx.checkpoint?.({ step: at, weight, full, ...(switchedAt !== undefined ? { switchedAt } : {}), ...extra });

  /** `pausedAt`: when the pause began, earlier than now for a pause resumed after a restart. */
  const pause = async (reason: string, durationSeconds?: number, pausedAt = Date.now()): Promise<void> => {
    save({ pausedAt, untilPromoted: durationSeconds === undefined });
    publish({ type: 'rollout.paused', env, app, revision, reason, untilPromoted: durationSeconds === undefined });
    const r = await waitFor(durationSeconds === undefined ? undefined : Math.max(0, pausedAt + durationSeconds * 1000 - Date.now()), true);
    if (r === 'aborted') throw new Aborted();
  };

  publish({ type: 'rollout.started', env, app, revision, strategy: ctx.strategy, from: ctx.from, to: ctx.to, ...(resume ? { resumed: true } : {}) });
  try {
    for (const [i, step] of steps.entries()) {
      if (i < (resume?.step ?? 0)) continue;
      if (full && (step.kind === 'pause' || step.kind === 'analysis')) continue;
      // Superseded after the switch with nothing left to check: finish instead of switching back.
      const settled = weight === 100 && steps.slice(i).every((s) => s.kind === 'holdStable' || s.kind === 'promote');
      if (interrupt.aborted || (superseded.aborted && !settled)) throw new Aborted();
      at = i;
      save();
      publish({ type: 'rollout.step', env, app, revision, step: i + 1, steps: steps.length, weight, message: describeStep(step) });
      switch (step.kind) {
        case 'scale': {
          const r = await driver.scaleNew(step.replicas, Date.now() + ctx.progressDeadlineSeconds * 1000, signal);
          if (signal.aborted) throw new Aborted();
          if (!r.ok) return await fail(`version ${ctx.to} did not become ready: ${r.message}`);
          break;
        }
        case 'setWeight':
          await driver.setWeight(step.weight);
          weight = step.weight;
          if (weight === 100) switchedAt ??= Date.now();
          break;
        case 'pause':
          await pause(step.reason, step.durationSeconds, i === resume?.step ? resume.pausedAt : undefined);
          break;
        case 'analysis': {
          const { phase, message } = await analyse(step.name, step.analysis);
          if (signal.aborted) throw new Aborted();
          if (phase === 'Failed') return await fail(`${step.name} analysis failed: ${message}`);
          if (phase === 'Inconclusive') await pause(`${step.name} analysis inconclusive: ${message}; promote-rollout to go on`);
          break;
        }
        case 'holdStable': {
          const left = (switchedAt ?? Date.now()) + step.seconds * 1000 - Date.now();
          if (left > 0) await waitFor(left, false);
          if (interrupt.aborted) throw new Aborted();
          break;
        }
        case 'promote':
          await driver.promote();
          break;
      }
    }
  } catch (err) {
    if (interrupt.aborted) {
      const message = `rollout of ${ctx.to} interrupted at step ${at + 1}/${steps.length}: the engine stopped; it resumes there when the engine starts again`;
      return { ok: false, message, interrupted: true };
    }
    if (err instanceof Aborted || superseded.aborted) {
      const why = superseded.reason instanceof Error ? superseded.reason.message : typeof superseded.reason === 'string' ? superseded.reason : 'cancelled';
      return await fail(`rollout of ${ctx.to} cancelled: ${why}`);
    }
    if (err instanceof TransientError) {
      // Nothing is known to be wrong with the new version: leave both sets as they are, to be resumed on retry.
      return { ok: false, message: `rollout of ${ctx.to} stopped at step ${at + 1}/${steps.length}: ${err.message}`, interrupted: true, transient: true };
    }
    return await fail(`rollout of ${ctx.to} failed: ${errorMessage(err)}`);
  } finally {
    off();
    signal.removeEventListener('abort', onAbort);
  }
  const message = `${ctx.strategy} rollout ${ctx.from} → ${ctx.to} completed`;
  publish({ type: 'rollout.completed', env, app, revision, message });
  return { ok: true, message };

  async function fail(reason: string): Promise<RolloutOutcome> {
    const message = `${reason}; rollout aborted, all traffic back on ${ctx.from}`;
    save({ aborting: message });
    await driver.abort();
    publish({ type: 'rollout.aborted', env, app, revision, reason: message });
    publish({ type: 'app.rolledBack', env, app, revision, message });
    return { ok: false, message, rolledBack: true };
  }

  /** Runs every metric concurrently; the first failure stops the others. */
  async function analyse(name: string, spec: AnalysisSpec): Promise<{ phase: AnalysisPhase; message: string }> {
    const stop = new AbortController();
    const both = AbortSignal.any([signal, stop.signal]);
    const results = await Promise.all(
      spec.metrics.map(async (m) => {
        const measurements: Measurement[] = [];
        let phase: AnalysisPhase = 'Running';
        let snapshot = m.requests ? await driver.newSetStats() : undefined;
        for (let i = 0; phase === 'Running' && !both.aborted; i++) {
          // Request metrics need an interval of traffic first; checks measure at once, then every interval.
          if (m.requests || i > 0) if ((await sleep(m.intervalSeconds * 1000, both)) === false) break;
          let x: Measurement;
          if (m.requests) {
            const now = await driver.newSetStats();
            x = measureRequests(m.requests, statsDelta(snapshot, now));
            snapshot = now;
          } else {
            x = await driver.check(m, both);
          }
          if (both.aborted) break;
          measurements.push(x);
          phase = metricPhase(m, measurements);
          publish({ type: 'rollout.analysis', env, app, revision, analysis: name, metric: m.name, phase: x.phase, message: x.message });
        }
        if (phase === 'Failed' || phase === 'Error') stop.abort();
        return { phase, message: describeMetric(m.name, phase, measurements) };
      }),
    );
    const phase = analysisPhase(results.map((r) => (r.phase === 'Running' ? 'Successful' : r.phase)));
    const message = results.filter((r) => r.phase !== 'Successful' && r.phase !== 'Running').map((r) => r.message).join('; ') || results.map((r) => r.message).join('; ');
    publish({ type: 'rollout.analysis', env, app, revision, analysis: name, metric: '*', phase, message });
    return { phase, message };
  }
}

/** Resolves true after `ms`, false as soon as `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      resolve(false);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
