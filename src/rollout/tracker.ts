/** The state of each app's latest progressive rollout, folded from rollout events on the bus (for the API and CLI). */
import { appKey } from '../core/types.js';
import type { EventBus, RolloutEvent, Stamped } from '../core/events.js';

export type RolloutPhase = 'Progressing' | 'Paused' | 'Completed' | 'Failed';

export interface RolloutState {
  env: string;
  app: string;
  revision: string;
  strategy: string;
  from: string;
  to: string;
  phase: RolloutPhase;
  /** 1-based step being run, of `steps`. */
  step: number;
  steps: number;
  /** Share of new requests going to the new version, percent. */
  weight: number;
  /** Waiting for `keelson promote-rollout`. */
  untilPromoted: boolean;
  message: string;
  updatedAt: string;
}

export class RolloutTracker {
  private readonly states = new Map<string, RolloutState>();
  readonly close: () => void;

  constructor(bus: EventBus) {
    this.close = bus.subscribe((e) => {
      if (e.type.startsWith('rollout.')) this.fold(e as RolloutEvent & Stamped);
    });
  }

  get(env: string, app: string): RolloutState | undefined {
    return this.states.get(appKey(env, app));
  }

  all(): RolloutState[] {
    return [...this.states.values()];
  }

  /** Whether a rollout of the app is under way (promote-rollout has something to act on). */
  isActive(env: string, app: string): boolean {
    const s = this.get(env, app);
    return s !== undefined && (s.phase === 'Progressing' || s.phase === 'Paused');
  }

  private fold(e: RolloutEvent & Stamped): void {
    if (e.type === 'rollout.promoteRequested') return;
    const key = appKey(e.env, e.app);
    if (e.type === 'rollout.started') {
      this.states.set(key, {
        env: e.env,
        app: e.app,
        revision: e.revision,
        strategy: e.strategy,
        from: e.from,
        to: e.to,
        phase: 'Progressing',
        step: 0,
        steps: 0,
        weight: 0,
        untilPromoted: false,
        message: `${e.strategy} rollout ${e.from} → ${e.to} ${e.resumed ? 'resumed after an engine restart' : 'started'}`,
        updatedAt: e.time,
      });
      return;
    }
    const s = this.states.get(key);
    if (!s || s.revision !== e.revision) return;
    s.updatedAt = e.time;
    switch (e.type) {
      case 'rollout.step':
        Object.assign(s, { phase: 'Progressing', step: e.step, steps: e.steps, weight: e.weight, untilPromoted: false, message: e.message });
        break;
      case 'rollout.paused':
        Object.assign(s, { phase: 'Paused', untilPromoted: e.untilPromoted, message: e.reason });
        break;
      case 'rollout.analysis':
        if (e.metric !== '*') s.message = `${e.analysis} analysis, ${e.metric}: ${e.phase} (${e.message})`;
        break;
      case 'rollout.completed':
        Object.assign(s, { phase: 'Completed', weight: 100, untilPromoted: false, message: e.message });
        break;
      case 'rollout.aborted':
        Object.assign(s, { phase: 'Failed', weight: 0, untilPromoted: false, message: e.reason });
        break;
    }
  }
}
