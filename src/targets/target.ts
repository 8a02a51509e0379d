import type { DesiredApp } from '../core/model.js';
import type { HealthCode } from '../core/types.js';

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
}

export interface ApplyContext {
  revision: string;
  /** Root of the checkout at `revision`, for artifacts given by path. */
  checkoutDir: string;
  signal?: AbortSignal;
  /** Replace every replica even if nothing changed (heals a modified release). */
  restartAll?: boolean;
}

export type ApplyOutcome =
  | { ok: true; action: 'created' | 'configured'; message: string }
  | { ok: false; message: string; rolledBack: boolean; logTail: string[] };

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
  logs(env: string, app: string): { replica: string; path: string }[];
}
