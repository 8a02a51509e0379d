/**
 * Claims: an engine runs an environment only while it holds that environment's claim, a lease kept where every engine
 * of the environment sees it (a Lease in the environment's namespace for Kubernetes, a file on the host for local).
 * The backends store and compare-and-swap records; `ClaimKeeper` (keeper.ts) owns timing and the decision who holds.
 */

/**
 * Default timings (README: "Several engines on one ops repository", "Timings"; `keelson up --claim-duration`,
 * `--claim-renew`, `--claim-retry`, `--claim-margin`; tests shorten them through `ClaimKeeperOptions`).
 *
 * Chosen so that a standby takes over within 15 s of the holder's crash also on Kubernetes, where it counts a whole
 * duration from the first time it saw the last renewal (≤ duration + 2 × retry after that renewal). The holder stops
 * writing `duration − margin` = 7 s after the start of its last successful renewal, so a renewal every 3 s survives a
 * failed one plus three retries; the 3 s margin covers a write under way when the claim is lost, a slow request and
 * event-loop stalls (time is measured on each engine's monotonic clock: clock skew between machines plays no part).
 * API-server load per Kubernetes environment: the holder sends a GET and a PUT every 3 s, each standby a GET every 1 s.
 */
export const claimDefaults = {
  /** How long a claim stays valid without a renewal: a standby takes over once it has expired. */
  durationMs: 10_000,
  /** How often the holder renews its claims. */
  renewMs: 3_000,
  /** How often a failed renewal, and a standby's look at someone else's claim, is retried. */
  retryMs: 1_000,
  /**
   * The holder stops writing this long before its claim could expire in the eyes of the others (so a reconcile cut
   * short, the time a request takes and a little clock drift fit in before anyone else may take over).
   */
  marginMs: 3_000,
};

export type ClaimTimings = typeof claimDefaults;

/**
 * Timings with the ones not given filled in: the defaults, scaled down for a claim duration shorter than the default
 * (margin and renewal period at most 30 % of the duration, retries at most a third of the renewal period).
 */
export function claimTimings(t: Partial<ClaimTimings> = {}): ClaimTimings {
  const durationMs = t.durationMs ?? claimDefaults.durationMs;
  const marginMs = t.marginMs ?? Math.min(claimDefaults.marginMs, Math.floor(durationMs * 0.3));
  const renewMs = t.renewMs ?? Math.min(claimDefaults.renewMs, Math.floor(durationMs * 0.3));
  const retryMs = t.retryMs ?? Math.max(1, Math.min(claimDefaults.retryMs, Math.floor(renewMs / 3)));
  return { durationMs, renewMs, retryMs, marginMs };
}

/**
 * How long one request to where claims are kept may take before it is given up and retried: half the time from a
 * renewal to the holder's stop (2 s with the defaults), so that a renewal hanging on an API server that does not
 * answer leaves room for a retry; at least 1 s, at most 5 s.
 */
export function requestTimeout(t: ClaimTimings): number {
  return Math.min(5_000, Math.max(1_000, Math.floor((t.durationMs - t.marginMs - t.renewMs) / 2)));
}

/**
 * Checks timings given by the user: returns what is wrong with them (undefined when they are usable). The holder must
 * be able to renew before it stops writing, and the margin must leave it time to write at all.
 */
export function timingsProblem(t: ClaimTimings): string | undefined {
  const s = (ms: number) => `${ms / 1000}s`;
  if (t.durationMs < 1_000) return `the claim duration must be at least 1s, got ${s(t.durationMs)}`;
  if (t.marginMs <= 0 || t.marginMs >= t.durationMs) return `the claim margin (${s(t.marginMs)}) must be more than 0 and less than the claim duration (${s(t.durationMs)})`;
  if (t.renewMs <= 0 || t.renewMs >= t.durationMs - t.marginMs) return `the renewal period (${s(t.renewMs)}) must be shorter than the claim duration less the margin (${s(t.durationMs)} − ${s(t.marginMs)} = ${s(t.durationMs - t.marginMs)}): else the holder stops writing before it renews`;
  if (t.retryMs <= 0 || t.retryMs > t.renewMs) return `the retry period (${s(t.retryMs)}) must be more than 0 and at most the renewal period (${s(t.renewMs)})`;
  return undefined;
}

/** A claim as read from where it is kept. */
export interface ClaimRecord {
  /** Engine identity of the holder (`host/id`), or '' when the claim was released. */
  holder: string;
  /** Host and pid of the holder process: an engine restarted on the same host re-takes its own claim at once. */
  host: string;
  pid: number;
  /**
   * The holder's API (`--advertise-url`): the other engines forward requests about the environment there (README:
   * "The API on every engine"). Absent when the holder advertises none.
   */
  url?: string;
  /** When the holder took it, and last renewed it (ISO time, holder's clock). */
  acquiredAt: string;
  renewedAt: string;
  durationMs: number;
  /** How many times the claim changed hands. */
  transitions: number;
  /** Opaque version for compare-and-swap (Kubernetes resourceVersion, generation of the claim file). */
  version: string;
}

/** What an engine writes to take or renew a claim. */
export type ClaimWrite = Omit<ClaimRecord, 'version'>;

/** Where the claims of one environment are kept. */
export interface ClaimBackend {
  /** Where it is kept, for status and logs (`Lease ns/keelson-env-dev`, a file path). */
  readonly where: string;
  /**
   * How far the holder's clock may be from ours: a claim counts as expired by its own times only this much after it.
   * 0 on one host; a standby on another machine otherwise waits until it saw the record unchanged for a duration.
   */
  readonly clockSkewMs: number;
  /** The current claim, undefined when there is none. Throws when it cannot tell. */
  read(env: string): Promise<ClaimRecord | undefined>;
  /**
   * Writes `next` only if the claim is still `current` (undefined: there is none yet): `renew` keeps the holder's
   * claim, `take` creates or takes it over. Resolves the record written, or undefined when another engine changed
   * it first (that engine won).
   */
  write(env: string, current: ClaimRecord | undefined, next: ClaimWrite, mode: 'renew' | 'take'): Promise<ClaimRecord | undefined>;
  /** Gives the claim up if `current` is still it: a standby takes over at once. */
  release(env: string, current: ClaimRecord): Promise<void>;
  /** Done with it (connections). */
  close?(): void;
}

/** An environment's claim as status shows it. */
export interface ClaimView {
  /** `Active`: this engine holds it and runs the environment; `Standby`: another engine does; `Unknown`: not read yet or unreadable. */
  state: 'Active' | 'Standby' | 'Unknown';
  holder: string | null;
  /** This engine's identity. */
  identity: string;
  /** The holder's API, where requests about the environment are forwarded (null when it advertises none). */
  url: string | null;
  since: string | null;
  /** When the holder's claim expires unless renewed (holder's clock). */
  expiresAt: string | null;
  where: string;
  /** Why the claim could not be read or written, if it could not. */
  error: string | null;
  message: string;
}
