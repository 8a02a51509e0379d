import { describe, expect, test } from 'vitest';
import { EventBus, type Stamped } from '../core/events.js';
import { runRollout, type RolloutCheckpoint, type RolloutDriver } from './runner.js';
import { planRollout } from './steps.js';

/** A canary of 4 replicas: 25 %, pause, 50 %, pause, then full scale, 100 %, promote (9 steps). */
const steps = planRollout({ strategy: 'canary', canary: { stickySessions: true, steps: [{ setWeight: 25 }, { pause: {} }, { setWeight: 50 }, { pause: {} }] } }, 4);

/** A driver that does nothing but say what it was asked, in order. */
function recordingDriver() {
  const calls: string[] = [];
  const driver: RolloutDriver = {
    scaleNew: async (n) => (calls.push(`scale ${n}`), { ok: true }),
    setWeight: async (w) => void calls.push(`weight ${w}`),
    newSetStats: async () => undefined,
    check: async () => ({ phase: 'Successful', message: '' }),
    promote: async () => void calls.push('promote'),
    abort: async () => void calls.push('abort'),
  };
  return { calls, driver };
}

function start(o: { resume?: RolloutCheckpoint; signal?: AbortSignal; interrupt?: AbortSignal } = {}) {
  const bus = new EventBus();
  const events: Stamped[] = [];
  bus.subscribe((e) => events.push(e));
  const checkpoints: RolloutCheckpoint[] = [];
  const { calls, driver } = recordingDriver();
  // Subscribed first: a resumed pause is published before runRollout returns.
  const pausedOnce = new Promise<void>((resolve) => bus.subscribe((e) => e.type === 'rollout.paused' && resolve()));
  const outcome = runRollout(steps, driver, {
    env: 'dev',
    app: 'web',
    revision: 'r1',
    strategy: 'canary',
    from: '1',
    to: '2',
    progressDeadlineSeconds: 60,
    bus,
    ...o,
    checkpoint: (c) => {
      checkpoints.push(c);
      calls.push(`checkpoint ${c.step}${c.aborting ? ' aborting' : ''}`);
    },
  });
  const paused = () => pausedOnce;
  const promote = () => bus.publish({ type: 'rollout.promoteRequested', env: 'dev', app: 'web', full: false });
  return { events, checkpoints, calls, outcome, paused, promote };
}

describe('runRollout: checkpoints, resume, interrupt', () => {
  test('resumes at the checkpoint: its weight, the steps before it not run again', async () => {
    const r = start({ resume: { step: 5, weight: 50, full: false, pausedAt: 1, untilPromoted: true } });
    await r.paused();
    r.promote();
    expect(await r.outcome).toEqual({ ok: true, message: 'canary rollout 1 → 2 completed' });
    expect(r.calls).toEqual(['checkpoint 5', 'checkpoint 5', 'checkpoint 6', 'scale 4', 'checkpoint 7', 'weight 100', 'checkpoint 8', 'promote']);
    expect(r.checkpoints[1]).toMatchObject({ step: 5, weight: 50, untilPromoted: true });
    expect(r.events.find((e) => e.type === 'rollout.started')).toMatchObject({ resumed: true });
    expect(r.events.filter((e) => e.type === 'rollout.step').map((e) => [(e as any).step, (e as any).weight])).toEqual([
      [6, 50],
      [7, 50],
      [8, 50],
      [9, 100],
    ]);
  });

  test('an interrupt leaves both sets and the weight as they are; the last checkpoint is the pause', async () => {
    const interrupt = new AbortController();
    const r = start({ interrupt: interrupt.signal });
    await r.paused();
    interrupt.abort();
    expect(await r.outcome).toMatchObject({ ok: false, interrupted: true, message: expect.stringContaining('interrupted at step 3/9') });
    expect(r.calls).not.toContain('abort');
    expect(r.checkpoints.at(-1)).toMatchObject({ step: 2, weight: 25, untilPromoted: true });
    expect(r.events.some((e) => e.type === 'rollout.aborted')).toBe(false);
  });

  test('an abort is checkpointed before the driver aborts, so an interrupted abort is finished, not resumed', async () => {
    const superseded = new AbortController();
    const r = start({ signal: superseded.signal });
    await r.paused();
    superseded.abort(new Error('superseded by revision abc1234'));
    expect(await r.outcome).toMatchObject({ ok: false, rolledBack: true });
    expect(r.calls.slice(-2)).toEqual(['checkpoint 2 aborting', 'abort']);
    expect(r.checkpoints.at(-1)!.aborting).toMatch(/^rollout of 2 cancelled: superseded by revision abc1234; rollout aborted/);
  });
});
