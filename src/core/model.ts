/**
 * The desired model: what render produces from an ops repository at one commit.
 * Plain, serializable data; no I/O.
 */

export interface Probe {
  http?: { path: string; port?: number };
  tcp?: { port?: number };
  exec?: { command: string[] };
  initialDelaySeconds: number;
  periodSeconds: number;
  timeoutSeconds: number;
  failureThreshold: number;
  successThreshold: number;
}

export interface Artifact {
  /**
   * Directory of the artifact (already `{version}`-substituted). Render gives an absolute path; the engine rewrites
   * it relative to the checkout root so the same content at another commit has the same spec.
   */
  path?: string;
  /** http(s) URL of a .tar.gz (already substituted) with its required sha256. */
  url?: string;
  sha256?: string;
  /** Content digest (directory hash for a path, the sha256 for a URL), filled in by the engine. */
  digest?: string;
}

/** Where a declaration came from, for `file:line:col` messages. */
export interface SourceRef {
  file: string;
  line: number;
  col: number;
}

/** An App as it should run in one environment: base spec with the environment's overrides applied. */
export interface DesiredApp {
  name: string;
  env: string;
  version: string;
  artifact: Artifact;
  command: string[];
  /** Environment variables of the process (base `run.env` merged with the environment's `env`). */
  vars: Record<string, string>;
  replicas: number;
  /** Public port owned by the proxy; replicas get their own PORT. */
  port?: number;
  readiness?: Probe;
  liveness?: Probe;
  dependsOn: string[];
  /** Seconds to wait for a new version to become ready before rolling back. */
  progressDeadlineSeconds: number;
  /** Seconds between SIGTERM and SIGKILL. */
  terminationGracePeriodSeconds: number;
  source: SourceRef;
}

export interface LocalTargetSpec {
  local: Record<string, never>;
}
export type TargetSpec = LocalTargetSpec | { kubernetes: Record<string, unknown> };

export interface DesiredEnvironment {
  name: string;
  target: TargetSpec;
  /** Apps in dependency order (dependencies first). */
  apps: DesiredApp[];
  source: SourceRef;
}

export interface DesiredState {
  environments: DesiredEnvironment[];
}

export function targetName(t: TargetSpec): string {
  return Object.keys(t)[0] ?? 'unknown';
}
