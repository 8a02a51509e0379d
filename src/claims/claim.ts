/**
 * Claims: an engine runs an environment only while it holds that environment's claim, a lease kept where every engine
 * of the environment sees it (a Lease in the environment's namespace for Kubernetes, a file on the host for local).
 * The backends store and compare-and-swap records; `ClaimKeeper` (keeper.ts) owns timing and the decision who holds.
 */

/** Default timings (the documented ones; tests shorten them through `ClaimKeeperOptions`). */
export const claimDefaults = {
  /** How long a claim stays valid without a renewal: a standby takes over once it has expired. */
  durationMs: 15_000,
  /** How often the holder renews its claims. */
  renewMs: 5_000,
  /** How often a failed renewal, and a standby's look at someone else's claim, is retried. */
  retryMs: 2_000,
  /**
   * The holder stops writing this long before its claim could expire in the eyes of the others (so a reconcile cut
   * short, the time a request takes and a little clock drift fit in before anyone else may take over).
   */
  marginMs: 3_000,
};

/** A claim as read from where it is kept. */
export interface ClaimRecord {
  /** Engine identity of the holder (`host/id`), or '' when the claim was released. */
  holder: string;
  /** Host and pid of the holder process: an engine restarted on the same host re-takes its own claim at once. */
  host: string;
  pid: number;
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
  since: string | null;
  /** When the holder's claim expires unless renewed (holder's clock). */
  expiresAt: string | null;
  where: string;
  /** Why the claim could not be read or written, if it could not. */
  error: string | null;
  message: string;
}
