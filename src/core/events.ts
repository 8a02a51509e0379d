import { EventEmitter } from 'node:events';
import type { HookPhase } from './delivery.js';
import type { Action, HealthCode } from './types.js';

/**
 * Everything that happens is one typed event on the bus. History, metrics, the API's event stream and the CLI's
 * progress all subscribe here; nobody reaches into another part to learn what happened.
 */
export type KeelsonEvent =
  | { type: 'source.fetched'; revision: string; changed: boolean; forced: boolean; durationMs: number }
  | { type: 'source.failed'; message: string }
  | { type: 'render.failed'; revision: string; issues: string[] }
  | { type: 'sync.started'; env: string; revision: string; changes: number }
  | { type: 'sync.completed'; env: string; revision: string; result: SyncResult; durationMs: number; message: string }
  | { type: 'app.changed'; env: string; app: string; action: Action; revision: string; message: string }
  | { type: 'app.failed'; env: string; app: string; revision: string; message: string }
  | { type: 'app.rolledBack'; env: string; app: string; revision: string; message: string }
  | { type: 'health.changed'; env: string; app: string; from: HealthCode; to: HealthCode; message: string }
  | {
      type: 'drift.detected';
      env: string;
      app: string;
      kind: DriftKind;
      message: string;
      /** Kubernetes target: the object (`kind/namespace/name`) and the fields changed behind Keelson's back. */
      object?: string;
      changes?: { field: string; old: unknown; new: unknown }[];
    }
  | { type: 'replica.started'; env: string; app: string; replica: string; pid: number; version: string }
  | { type: 'replica.exited'; env: string; app: string; replica: string; pid: number; code: number | null; signal: string | null; reason?: 'OOMKilled' }
  | { type: 'replica.restarted'; env: string; app: string; replica: string; restarts: number; delayMs: number; reason?: string }
  | { type: 'replica.adopted'; env: string; app: string; replica: string; pid: number }
  | { type: 'replica.ready'; env: string; app: string; replica: string; ready: boolean }
  | { type: 'hook.started'; env: string; app: string; phase: HookPhase; step: string; attempt: number; revision: string }
  | { type: 'hook.completed'; env: string; app: string; phase: HookPhase; step: string; attempt: number; revision: string; ok: boolean; durationMs: number; message: string; output: string }
  | { type: 'sync.waiting'; env: string; revision: string; reason: string; opensAt: string | null }
  | { type: 'notification.failed'; env: string; notification: string; trigger: string; message: string }
  | { type: 'pause.changed'; env: string; app: string | null; paused: boolean }
  | { type: 'run.started'; env: string; app: string; command: string }
  | { type: 'run.completed'; env: string; app: string; command: string; code: number | null; signal: string | null; durationMs: number; message: string }
  | { type: 'automation.committed'; env: string; app: string; from: string; to: string; commit: string; message: string }
  | { type: 'automation.failed'; app: string | null; message: string }
  | { type: 'rollback.committed'; env: string; app: string; to: string; commit: string; actor: string; message: string }
  | CertificateEvent
  | RolloutEvent;

/** HTTPS certificates of the local target's hosts (ACME orders and renewals). */
export type CertificateEvent =
  | { type: 'certificate.issued'; env: string; app: string; hosts: string[]; notAfter: string; renewal: boolean }
  | { type: 'certificate.failed'; env: string; app: string; hosts: string[]; renewal: boolean; message: string; retryAt: string };

/** Progressive rollouts (blue/green, canary); see src/rollout/. */
export type RolloutEvent =
  /** `resumed`: an interrupted rollout taken up again after an engine restart (rollout.step says where). */
  | { type: 'rollout.started'; env: string; app: string; revision: string; strategy: string; from: string; to: string; resumed?: boolean }
  | { type: 'rollout.step'; env: string; app: string; revision: string; step: number; steps: number; weight: number; message: string }
  | { type: 'rollout.paused'; env: string; app: string; revision: string; reason: string; untilPromoted: boolean }
  | { type: 'rollout.promoteRequested'; env: string; app: string; full: boolean }
  | { type: 'rollout.analysis'; env: string; app: string; revision: string; analysis: string; metric: string; phase: string; message: string }
  | { type: 'rollout.completed'; env: string; app: string; revision: string; message: string }
  | { type: 'rollout.aborted'; env: string; app: string; revision: string; reason: string };

export type SyncResult = 'Succeeded' | 'Failed';
export type DriftKind = 'process-exited' | 'replica-missing' | 'replica-extra' | 'release-modified' | 'proxy-missing' | 'object-modified' | 'object-deleted';

export type EventOf<T extends KeelsonEvent['type']> = Extract<KeelsonEvent, { type: T }>;
export type Stamped = KeelsonEvent & { time: string; seq: number };

export class EventBus {
  private readonly emitter = new EventEmitter();
  private seq = 0;
  private redact?: (e: KeelsonEvent) => KeelsonEvent;

  constructor() {
    this.emitter.setMaxListeners(0);
  }

  /**
   * Every event passes through `fn` before any subscriber sees it: the engine masks secret values here, so history,
   * the event stream, notifications and metrics never get them.
   */
  redactWith(fn: (e: KeelsonEvent) => KeelsonEvent): void {
    this.redact = fn;
  }

  publish(event: KeelsonEvent): void {
    const stamped = { ...(this.redact ? this.redact(event) : event), time: new Date().toISOString(), seq: ++this.seq } as Stamped;
    this.emitter.emit('event', stamped);
  }

  /** Subscribes to every event; returns the function that unsubscribes. */
  subscribe(fn: (e: Stamped) => void): () => void {
    this.emitter.on('event', fn);
    return () => this.emitter.off('event', fn);
  }

  /** Resolves with the first event matching `pred`, or rejects after `timeoutMs`. */
  waitFor(pred: (e: Stamped) => boolean, timeoutMs: number): Promise<Stamped> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`no matching event within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.subscribe((e) => {
        if (pred(e)) {
          clearTimeout(timer);
          off();
          resolve(e);
        }
      });
    });
  }
}
