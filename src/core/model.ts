/**
 * The desired model: what render produces from an ops repository at one commit.
 * Plain, serializable data; no I/O.
 */
import type { HookSet, NotificationSpec, SyncWindow } from './delivery.js';
import type { RolloutSpec } from './rollout.js';
import type { ObjectPolicy } from '../policy/policy.js';

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

/** A remote chart: from an http(s) chart repository (`name` required) or an `oci://` reference, pinned. */
export interface HelmChartRef {
  repo: string;
  name?: string;
  version: string;
  /** `sha256:…` the downloaded chart must have. */
  digest?: string;
}

export interface HelmSpec {
  /** `.Release.Name`: `spec.helm.releaseName`, else the app name. */
  releaseName: string;
  /** Inline values (the App's, with the environment entry's merged over them), applied after the values files. */
  values: Record<string, unknown>;
  /** Values files as repository paths (symlinks resolved, inside the repository), the App's then the environment's. */
  valuesFiles: string[];
  /** sha256 of the values files' contents, so an edited values file outside the chart directory re-renders. */
  valuesDigest?: string;
  chart?: HelmChartRef;
  /** `afterSync`: the chart's test hooks run after each sync, and their failure fails it. */
  tests?: 'afterSync';
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
  /**
   * The declared version; '' for a manifests app that declares none (nothing uses it there): status and diffs show
   * the revision instead.
   */
  version: string;
  artifact: Artifact;
  command: string[];
  /** Environment variables of the process (base `run.env` merged with the environment's `env`). */
  vars: Record<string, string>;
  replicas: number;
  /** Public port owned by the proxy; replicas get their own PORT. */
  port?: number;
  /** Virtual host (`app.env.localhost`) the proxy routes to this app on `port`, sharing the port with its owner. */
  host?: string;
  /** Public names routed to this app on the proxy's shared web ports (local target), lower-case. */
  hosts?: string[];
  /** HTTPS for `hosts`. */
  tls?: DesiredTls;
  /** Kubernetes target: container image with its tag (the version) for an App rendered to a Deployment. */
  image?: string;
  /**
   * Kubernetes target: an App given as a directory of manifests. `artifact.path` is that directory (so the engine's
   * content digest covers it); `image` names the image whose tag the version sets; `replicas` tells whether the
   * App or environment set replicas explicitly (else the manifests' own replicas stand).
   */
  manifests?: { dir: string; replicas: boolean };
  /**
   * Kubernetes target: how the Helm chart in `manifests` (a directory with a Chart.yaml) or the remote `chart` is
   * rendered. Absent for a chart directory without `spec.helm` (then: release = app name, no values).
   */
  helm?: HelmSpec;
  /** Kubernetes target: parameters of a Jsonnet manifests directory; absent when none are declared. */
  jsonnet?: JsonnetParams;
  readiness?: Probe;
  liveness?: Probe;
  dependsOn: string[];
  /** Seconds to wait for a new version to become ready before rolling back. */
  progressDeadlineSeconds: number;
  /** Seconds between SIGTERM and SIGKILL. */
  terminationGracePeriodSeconds: number;
  /** Blue/green or canary; absent for the default rolling update. Not part of the template. */
  rollout?: RolloutSpec;
  /** SOPS-encrypted secrets the app reads: references and keyed digests only, never plaintext. Absent when none. */
  secrets?: AppSecrets;
  /** Kubernetes target: Argo CD sync options for all the app's objects (`spec.syncOptions`); absent when none. */
  syncOptions?: string[];
  /** Kubernetes target: fields other controllers own, left alone (`spec.ignoreDifferences`); absent when none. */
  ignoreDifferences?: IgnoreDifference[];
  /** Local target: the system user (and group) the app's processes run as; absent: the engine's policy decides. */
  user?: AppUser;
  /** Local target: limits of each replica (cgroups, else rlimits where they apply). Absent when none. */
  resources?: AppResources;
  source: SourceRef;
}

/** One `spec.ignoreDifferences` rule, as in Argo CD: which objects, and which of their fields. */
export interface IgnoreDifference {
  group?: string;
  kind: string;
  name?: string;
  namespace?: string;
  jsonPointers?: string[];
  managedFieldsManagers?: string[];
}

/** A Jsonnet parameter value: a string (`--tla-str`/`--ext-str`) or Jsonnet code (`--tla-code`/`--ext-code`). */
export type JsonnetValue = string | { code: string };

/** `spec.jsonnet` with the environment's entry layered over the App's. */
export interface JsonnetParams {
  tlas: Record<string, JsonnetValue>;
  extVars: Record<string, JsonnetValue>;
  /** Library directories (`-J`), relative to the repository root, symlinks resolved, inside the repository. */
  libs: string[];
}

/** A system user of the machine the local target runs on; `group` defaults to the user's primary group. */
export interface AppUser {
  name: string;
  group?: string;
}

/** Per-replica limits, in canonical units (Kubernetes quantities are parsed at render). */
export interface AppResources {
  /** Bytes. */
  memory?: number;
  /** Millicores (1000 = one CPU). */
  cpu?: number;
  /** Processes and threads. */
  pids?: number;
  /** Open file descriptors (RLIMIT_NOFILE). */
  openFiles?: number;
}
export interface DesiredTls {
  /** Certificates from an ACME CA; `caFile` is a repository path (a CA the engine trusts for the directory). */
  acme?: { email: string; directory: string; caFile?: string; challenge?: 'http-01' | 'tls-alpn-01' };
  /**
   * A certificate kept SOPS-encrypted in the repository: `file#key` of the PEM chain and of the key, for messages.
   * The references themselves are among `secrets.files` (at `tlsCertPath` / `tlsKeyPath`), so they are decrypted,
   * digested and checked like every secret.
   */
  certificate?: { cert: string; key: string };
  /** `Strict-Transport-Security: max-age=…` on HTTPS answers. */
  hstsMaxAgeSeconds?: number;
}

/** Where a static certificate and its key land below the app's secrets dir. */
export const tlsCertPath = '.keelson-tls/cert.pem';
export const tlsKeyPath = '.keelson-tls/key.pem';

/** A secret reference: a SOPS file (relative to the repository root) and, optionally, one key in it. */
export interface SecretRef {
  file: string;
  key?: string;
  /** Keyed HMAC of the decrypted value, filled in by the engine; a changed value changes the template. */
  digest?: string;
}

export interface AppSecrets {
  /** Environment variable name → the value it takes. */
  env: Record<string, SecretRef & { key: string }>;
  /** Path below the app's secrets dir (`$KEELSON_SECRETS_DIR`) → the decrypted file, or one value of it. */
  files: Record<string, SecretRef>;
}

export interface LocalTargetSpec {
  local: Record<string, never>;
}
export interface KubernetesTargetSpec {
  kubernetes: {
    namespace: string;
    kubeconfig?: string;
    context?: string;
    /** The engine configuration's cluster name the environment referred to (kubeconfig and context come from it). */
    cluster?: string;
    /** Kubernetes user every write of this environment impersonates (the policy's service account). */
    impersonate?: string;
    /** The engine policy's limits on the environment's objects (namespaces, kinds); absent when none is configured. */
    policy?: ObjectPolicy;
  };
}
export type TargetSpec = LocalTargetSpec | KubernetesTargetSpec;

export interface DesiredEnvironment {
  name: string;
  target: TargetSpec;
  /** Apps in dependency order (dependencies first). */
  apps: DesiredApp[];
  source: SourceRef;
  /** ISO 8601 expiry of an on-demand environment; once past, its apps are stopped (status Expired). */
  expiresAt?: string;
  /** Effective hooks per app (the environment's steps first, then the App's); absent when none. */
  hooks?: Record<string, HookSet>;
  syncWindows?: SyncWindow[];
  notifications?: NotificationSpec[];
  /** `keelson chaos` refuses to run here without --force. */
  protected?: boolean;
}

export interface DesiredState {
  environments: DesiredEnvironment[];
}

export function targetName(t: TargetSpec): string {
  return Object.keys(t)[0] ?? 'unknown';
}
