/**
 * The supervisor's vocabulary: what it tells the proxy (RouteSink, RouteTable), an app's replica sets (AppRun,
 * SetRef) and releases, the replicas it keeps (Replica), and what it reports (AppStatus, ReplicaStatus,
 * RolloutResult). Shared by the supervisor's modules (supervisor.ts, rolling-update.ts, probe-loop.ts,
 * app-status.ts, restart-policy.ts) and the local target.
 */
import type { ChildProcess } from 'node:child_process';
import type { DesiredApp } from '../../core/model.js';
import type { HealthCode } from '../../core/types.js';
import type { EventBus } from '../../core/events.js';
import type { Logger } from '../../log.js';
import type { Store } from '../../store/store.js';
import type { TrafficSplit } from './proxy/protocol.js';
import type { CgroupSystem, LimitsStatus, ReplicaCgroup } from './cgroups.js';
import type { IsolationPolicy } from './isolation.js';
import type { RunAs } from './users.js';

/** Where the supervisor sends routing changes: the proxy's control channel. */
export interface RouteSink {
  publish(table: RouteTable): Promise<void>;
  drain(backendIds: string[], timeoutMs: number): Promise<void>;
}

export interface RouteTable {
  routes: {
    key: string;
    port?: number;
    host?: string;
    /** Public names on the proxy's web ports, and whether they want HTTPS (see proxy/protocol.ts). */
    hosts?: string[];
    tls?: { hstsMaxAgeSeconds?: number };
    backends: { id: string; url: string; version: string; group?: string }[];
    split?: TrafficSplit;
  }[];
}

export interface ReleaseRef {
  id: string;
  dir: string;
  hash: string;
}

export type ReplicaState = 'starting' | 'running' | 'backoff' | 'stopping' | 'stopped';

/** One supervised process (the supervisor's modules share it; nothing outside the supervisor sees it). */
export interface Replica {
  id: string;
  env: string;
  app: string;
  spec: DesiredApp;
  template: string;
  release: ReleaseRef;
  port: number;
  logPath: string;
  pid: number;
  startTime: string;
  child?: ChildProcess;
  state: ReplicaState;
  ready: boolean;
  /** Taken out of the proxy's rotation ahead of a stop. */
  draining: boolean;
  everReady: boolean;
  restarts: number;
  /** Crashes since the replica was last healthy for `backoffResetMs`. */
  failures: number;
  /** When it was last restarted at once after being killed while serving (the last minute's). */
  promptRestarts: number[];
  readySince?: number;
  startedAt: number;
  lastExit?: string;
  lastProbe?: string;
  /** The last lines the replica wrote before it exited, for crash-loop messages. */
  lastLogs: string[];
  /**
   * The environment the process runs with, secret values included (memory only, never stored or shown). Exec
   * probes get it too; an adopted replica's is made again on its first exec probe.
   */
  runEnv?: Record<string, string>;
  /** Warned that its exec probes run without secret env vars (they could not be decrypted). */
  probeWithoutSecretsWarned?: boolean;
  livenessFailures: number;
  readinessFailures: number;
  readinessSuccesses: number;
  timers: Set<NodeJS.Timeout>;
  exited?: () => void;
  /** The user it runs as (absent: the engine's); resolved at each start. */
  runAs?: RunAs;
  /** Its cgroups (absent when no limit uses one) and what enforces each limit. */
  cgroup?: ReplicaCgroup;
  limits: LimitsStatus;
  /** Why it last ended, when the system says (`OOMKilled`). */
  reason?: 'OOMKilled';
}

export interface AppRun {
  env: string;
  app: string;
  spec: DesiredApp;
  template: string;
  release: ReleaseRef;
  revision: string;
  rollingOut: boolean;
  /**
   * Why its rollout gave up while its replicas stay (a first deploy has nothing to roll back to; a scale): the app
   * is Degraded with this reason until every replica is ready.
   */
  stalled?: string;
}

export interface SupervisorOptions {
  stateDir: string;
  store: Store;
  bus: EventBus;
  log: Logger;
  routes: RouteSink;
  /** How often adopted processes are checked for life, and missing or extra replicas healed. Default 200 ms. */
  tickMs?: number;
  /** Readiness is probed this often until a replica is first ready (a startup probe). Default 100 ms. */
  startupProbeMs?: number;
  /** Secret env vars of a replica about to start (plaintext: kept in memory, never stored). */
  secretEnv?: (spec: DesiredApp, template: string) => Promise<Record<string, string>>;
  /** Who apps without `user:` run as when the engine is root. Default: from KEELSON_ALLOW_ROOT_APPS / KEELSON_DEFAULT_USER. */
  isolation?: IsolationPolicy;
  /** The machine's cgroups (default: detected on first use). */
  cgroups?: () => Promise<CgroupSystem>;
}

export interface ReplicaStatus {
  id: string;
  pid: number;
  port: number;
  version: string;
  release: string;
  state: ReplicaState;
  ready: boolean;
  restarts: number;
  startedAt: string;
  logPath: string;
  message?: string;
  /** Why it last ended, when the system says: `OOMKilled`. */
  reason?: 'OOMKilled';
  /** The system user and group it runs as; absent: the engine's own. */
  user?: { name: string; group: string; uid: number; gid: number };
  /** Each declared limit with what enforces it here (`cgroup-v1`, `cgroup-v2`, `rlimit`, `none` with a reason). */
  limits?: LimitsStatus;
  /** Its cgroup directories, when limits use cgroups. */
  cgroups?: string[];
  /** Its systemd scope unit, when systemd makes its cgroup. */
  scope?: string;
}

export interface AppStatus {
  env: string;
  app: string;
  spec: DesiredApp;
  template: string;
  revision: string;
  version: string;
  release: ReleaseRef;
  health: HealthCode;
  message: string;
  replicas: { desired: number; ready: number; total: number; updated: number };
  instances: ReplicaStatus[];
}

export type RolloutResult =
  | { ok: true; message: string }
  /** `interrupted`: the engine stopped mid-rollout; nothing was rolled back (see rollout-state.ts). */
  | { ok: false; message: string; rolledBack: boolean; logTail: string[]; interrupted?: boolean };

/** One replica set of an app: its replicas have this template and release. */
export type SetRef = Pick<AppRun, 'env' | 'app' | 'template'> & { release: Pick<ReleaseRef, 'id'> };

/** The proxy's backend group of a replica set: its template hash. */
export function groupOf(template: string): string {
  return template.slice(0, 12);
}
