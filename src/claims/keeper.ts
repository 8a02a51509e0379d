/**
 * The claims of one engine: per environment, take the claim when it is free or expired, renew it while held, stand
 * by while another engine holds it, and stop writing before it could expire in the eyes of the others.
 *
 * Guarantee: an engine counts as holder (`holds`) only until `start of its last successful write + duration − margin`
 * (its own monotonic clock); another engine takes over only once the claim is expired by the holder's times (plus the
 * backend's clock skew allowance) or it saw the record unchanged for a whole duration. So the old holder has stopped
 * writing at least `margin` before anyone else may start.
 */
import { hostname } from 'node:os';
import { errorMessage } from '../core/errors.js';
import type { Logger } from '../log.js';
import { claimTimings, type ClaimTimings, type ClaimBackend, type ClaimRecord, type ClaimView, type ClaimWrite } from './claim.js';
import { assign } from './rendezvous.js';

export interface ClaimKeeperOptions {
  /** This engine's identity (see identity.ts): the same engine restarted has the same one. */
  identity: string;
  /** Where an environment's claim is kept (asked once per environment, when it is first tracked). */
  backendFor: (env: string) => ClaimBackend;
  log: Logger;
  /** The claim of `env` was taken: reconcile it now. */
  onAcquired?: (env: string) => void;
  /** The claim of `env` was lost (or given up): writes to it have stopped. */
  onLost?: (env: string, why: string) => void;
  /**
   * Sharding (README: "Sharding"): the live engines. With it, this engine tries to claim only the environments
   * assigned to it (rendezvous.ts), takes any other one only once it stayed unclaimed for a whole duration, and
   * hands an environment it holds to the engine it is now assigned to, between reconciles.
   */
  membership?: { members(): string[] };
  /** Every environment the engines share (the assignment is over all of them); the tracked ones when absent. */
  environments?: () => string[];
  /** Whether no reconcile of `env` is under way (a safe point to hand it over); always when absent. */
  idle?: (env: string) => boolean;
  /** This engine's API as the others reach it (`--advertise-url`), written into its claims; read when a claim is written. */
  advertiseUrl?: () => string | undefined;
  durationMs?: number;
  renewMs?: number;
  retryMs?: number;
  marginMs?: number;
}

interface EnvClaim {
  env: string;
  backend: ClaimBackend;
  record?: ClaimRecord;
  /** The record version last seen, and when (monotonic) it was first seen. */
  seen?: { version: string; at: number };
  held: boolean;
  /** Monotonic time until which this engine may write (held only). */
  validUntil: number;
  lost: AbortController;
  error?: string;
  timer?: NodeJS.Timeout;
  expiry?: NodeJS.Timeout;
  busy?: Promise<void>;
  /** Holder last logged as standing by for, so the log says it once. */
  loggedStandby?: string;
  /** Monotonic time since which this engine saw the claim free or expired while assigned to another engine. */
  freeSince?: number;
  /** Taken while assigned to `member` (it did not claim it in time): not handed back to it until `until` or the members change. */
  kept?: { member: string; members: string; until: number };
  /** Assigned engine last logged as waited for, so the log says it once. */
  loggedWaiting?: string;
  /** Resolved once the first attempt was made. */
  first: Promise<void>;
  firstDone?: () => void;
}

export class ClaimKeeper {
  readonly identity: string;
  private readonly envs = new Map<string, EnvClaim>();
  private readonly t: ClaimTimings;
  private stopped = false;

  constructor(private readonly o: ClaimKeeperOptions) {
    this.identity = o.identity;
    this.t = claimTimings({ durationMs: o.durationMs, renewMs: o.renewMs, retryMs: o.retryMs, marginMs: o.marginMs });
  }

  /** Starts claiming `env` (idempotent): the first attempt is made at once. */
  track(env: string): void {
    if (this.stopped || this.envs.has(env)) return;
    let firstDone!: () => void;
    const first = new Promise<void>((resolve) => (firstDone = resolve));
    const c: EnvClaim = { env, backend: this.o.backendFor(env), held: false, validUntil: 0, lost: new AbortController(), first, firstDone };
    c.lost.abort();
    this.envs.set(env, c);
    this.schedule(c, 0);
  }

  /** Whether this engine may write to `env` now. */
  holds(env: string): boolean {
    const c = this.envs.get(env);
    return !!c && c.held && performance.now() < c.validUntil;
  }

  /** Aborted when this engine's hold on `env` ends (lost, released, or the keeper stopped). */
  signal(env: string): AbortSignal {
    return this.envs.get(env)?.lost.signal ?? AbortSignal.abort();
  }

  /** Resolves once the first attempt on `env` has been made: whether this engine holds it is known then. */
  async settled(env: string): Promise<void> {
    await this.envs.get(env)?.first;
  }

  /** The engine this environment is assigned to (this one without sharding). */
  assignedTo(env: string): string {
    if (!this.o.membership) return this.identity;
    return this.assignment(env).get(env) ?? this.identity;
  }

  /** This engine as sharding sees it: its identity, how many engines share the environments, and its own. */
  engineView(): { id: string; members: number; assigned: string[] } {
    const a = this.assignment();
    const members = this.o.membership?.members() ?? [this.identity];
    return { id: this.identity, members: members.length, assigned: [...a].filter(([, m]) => m === this.identity).map(([e]) => e).sort() };
  }

  private cached?: { key: string; value: Map<string, string> };

  /** The assignment of every known environment (computed again only when the environments or members change). */
  private assignment(extra?: string): Map<string, string> {
    const envs = [...new Set([...(this.o.environments?.() ?? []), ...this.envs.keys(), ...(extra ? [extra] : [])])].sort();
    const members = this.o.membership?.members() ?? [this.identity];
    const key = `${members.join('\n')}\0${envs.join('\n')}`;
    if (this.cached?.key !== key) this.cached = { key, value: this.o.membership ? assign(envs, members) : new Map(envs.map((e) => [e, this.identity])) };
    return this.cached.value;
  }

  view(env: string): ClaimView | undefined {
    const c = this.envs.get(env);
    if (!c) return undefined;
    const r = c.record;
    const expiresAt = r && r.holder ? new Date(Date.parse(r.renewedAt) + r.durationMs).toISOString() : null;
    const base = { identity: this.identity, holder: r?.holder || null, url: (r?.holder && r.url) || null, since: r?.holder ? r.acquiredAt : null, expiresAt, where: c.backend.where, error: c.error ?? null };
    if (this.holds(env)) return { ...base, state: 'Active', message: `Active: this engine (${this.identity}) holds the claim since ${r?.acquiredAt}` };
    if (r?.holder && !this.isMine(r)) {
      const inS = Math.max(0, Math.round((Date.parse(r.renewedAt) + r.durationMs - Date.now()) / 1000));
      return { ...base, state: 'Standby', message: `Standby: claimed by ${r.holder} (pid ${r.pid}) since ${r.acquiredAt}, expires in ${inS}s; this engine takes over if it expires` };
    }
    return { ...base, state: 'Unknown', message: c.error ? `claim unknown: ${c.error}; this engine does not write to the environment until it holds the claim` : 'claiming the environment' };
  }

  /**
   * The other engine that runs `env` and where its API is, when there is one this engine can reach: not when this
   * engine holds the claim (or nobody does), nor when the holder advertises no API or a loopback one on another host.
   */
  peerOf(env: string): { engine: string; url: string; expiresAt: string | null } | undefined {
    const c = this.envs.get(env);
    const r = c?.record;
    if (!c || !r?.holder || !r.url || this.holds(env) || this.isMine(r)) return undefined;
    if (r.url === this.o.advertiseUrl?.()) return undefined; // two engines advertising one address: answer here
    let host: string;
    try {
      host = new URL(r.url).hostname;
    } catch {
      return undefined;
    }
    if ((host === 'localhost' || host === '[::1]' || /^127\./.test(host)) && r.host !== hostname()) return undefined;
    return { engine: r.holder, url: r.url, expiresAt: new Date(Date.parse(r.renewedAt) + r.durationMs).toISOString() };
  }

  /** Stops renewing; `release` gives held claims up so a standby takes over at once (a clean stop). */
  async stop(opts: { release: boolean } = { release: true }): Promise<void> {
    this.stopped = true;
    for (const c of this.envs.values()) {
      c.firstDone?.();
      if (c.timer) clearTimeout(c.timer);
      if (c.expiry) clearTimeout(c.expiry);
    }
    await Promise.allSettled([...this.envs.values()].map((c) => c.busy));
    await Promise.allSettled(
      [...this.envs.values()].map(async (c) => {
        const wasHeld = c.held;
        this.drop(c, 'the engine stopped');
        if (!opts.release || !wasHeld || !c.record) return c.backend.close?.();
        try {
          await c.backend.release(c.env, c.record);
          this.o.log.info({ env: c.env, where: c.backend.where }, 'claim released');
        } catch (err) {
          this.o.log.warn({ env: c.env, err: errorMessage(err) }, 'claim could not be released; a standby takes over once it expires');
        } finally {
          c.backend.close?.();
        }
      }),
    );
  }

  private schedule(c: EnvClaim, ms: number): void {
    if (this.stopped) return;
    if (c.timer) clearTimeout(c.timer);
    c.timer = setTimeout(() => {
      c.busy = this.attempt(c).finally(() => {
        c.busy = undefined;
        c.firstDone?.();
        c.firstDone = undefined;
        // A failed renewal is retried sooner than the next renewal: the claim is still held until validUntil.
        this.schedule(c, c.held && !c.error ? this.t.renewMs : this.t.retryMs);
      });
    }, ms);
    c.timer.unref();
  }

  /** The holder's claim when it is this engine's: same identity, and the same process or one that is gone. */
  private isMine(r: ClaimRecord): boolean {
    if (r.holder !== this.identity) return false;
    return r.pid === process.pid || r.host !== hostname() || !pidAlive(r.pid);
  }

  private expired(c: EnvClaim, r: ClaimRecord): boolean {
    if (!r.holder) return true; // released
    if (Date.now() > Date.parse(r.renewedAt) + r.durationMs + c.backend.clockSkewMs) return true;
    return c.seen !== undefined && c.seen.version === r.version && performance.now() - c.seen.at > r.durationMs;
  }

  private async attempt(c: EnvClaim): Promise<void> {
    const start = performance.now();
    try {
      const r = await c.backend.read(c.env);
      if (r && c.seen?.version !== r.version) c.seen = { version: r.version, at: performance.now() };
      c.record = r;
      c.error = undefined;
      if (this.stopped) return;
      const now = new Date().toISOString();
      const next = (mode: 'renew' | 'take'): ClaimWrite => ({
        holder: this.identity,
        host: hostname(),
        pid: process.pid,
        ...(this.o.advertiseUrl?.() ? { url: this.o.advertiseUrl() } : {}),
        acquiredAt: mode === 'renew' && r ? r.acquiredAt : now,
        renewedAt: now,
        durationMs: this.t.durationMs,
        transitions: (r?.transitions ?? 0) + (r && r.holder !== this.identity ? 1 : 0),
      });
      const assigned = this.assignedTo(c.env);
      if (c.held && r && r.pid === process.pid && r.holder === this.identity && this.shouldHandOver(c, assigned)) return await this.handOver(c, r, assigned);
      let mode: 'renew' | 'take' | undefined;
      // Only this process writes records with its identity and pid: one is still ours (also when the answer to our
      // last write was lost and `prev` is older).
      if (c.held && r && r.pid === process.pid && r.holder === this.identity && r.host === hostname()) mode = 'renew';
      else if (!r || (r && this.isMine(r)) || this.expired(c, r)) mode = 'take';
      if (c.held && mode !== 'renew') this.drop(c, `another engine (${r?.holder || 'none'}) changed the claim`);
      if (!mode) {
        c.freeSince = undefined;
        return this.standby(c, r!);
      }
      if (mode === 'take' && assigned !== this.identity && !(r && r.holder && this.isMine(r))) {
        // Another engine's to run: taken only once it stayed unclaimed for a whole duration (that engine is starting or stuck).
        c.freeSince ??= performance.now();
        if (performance.now() - c.freeSince < this.t.durationMs) {
          if (c.loggedWaiting !== assigned) {
            c.loggedWaiting = assigned;
            this.o.log.info({ env: c.env, assigned, where: c.backend.where }, 'environment assigned to another engine; this engine takes it only if that one has not claimed it within a claim duration');
          }
          return;
        }
        c.kept = { member: assigned, members: this.membersKey(), until: performance.now() + 10 * this.t.durationMs };
        this.o.log.warn({ env: c.env, assigned }, 'the engine this environment is assigned to did not claim it in time; this engine runs it');
      }
      const written = await c.backend.write(c.env, r, next(mode), mode);
      if (!written) {
        if (c.held) this.drop(c, 'another engine took the claim');
        return;
      }
      c.record = written;
      c.seen = { version: written.version, at: performance.now() };
      if (this.stopped) return;
      c.validUntil = start + this.t.durationMs - this.t.marginMs;
      if (c.expiry) clearTimeout(c.expiry);
      c.expiry = setTimeout(() => this.drop(c, `the claim could not be renewed for ${Math.round((this.t.durationMs - this.t.marginMs) / 1000)}s`), Math.max(0, c.validUntil - performance.now()));
      c.expiry.unref();
      if (!c.held) {
        c.held = true;
        c.freeSince = undefined;
        c.loggedWaiting = undefined;
        c.loggedStandby = undefined;
        c.lost = new AbortController();
        this.o.log.info({ env: c.env, engine: this.identity, where: c.backend.where, transitions: written.transitions }, 'environment claimed; this engine runs it');
        this.o.onAcquired?.(c.env);
      }
    } catch (err) {
      c.error = errorMessage(err);
      this.o.log.warn({ env: c.env, where: c.backend.where, err: c.error, held: c.held }, 'claim could not be read or renewed; retrying');
      // Still held until validUntil: the expiry timer drops it if no renewal gets through by then.
    }
  }

  private membersKey(): string {
    return (this.o.membership?.members() ?? []).join('\n');
  }

  /** Whether to give a held environment to the engine it is assigned to now: at a safe point, and not back and forth. */
  private shouldHandOver(c: EnvClaim, assigned: string): boolean {
    if (!this.o.membership || assigned === this.identity) return false;
    if (c.kept && c.kept.member === assigned && c.kept.members === this.membersKey() && performance.now() < c.kept.until) return false;
    return this.o.idle?.(c.env) ?? true;
  }

  /**
   * Hands `env` over: this engine stops writing first (holds() is false and the claim's signal aborts), waits the
   * margin (a write under way finishes, as before an expiry), and only then releases the claim, which the assigned
   * engine takes at its next look.
   */
  private async handOver(c: EnvClaim, r: ClaimRecord, assigned: string): Promise<void> {
    this.o.log.info({ env: c.env, to: assigned, where: c.backend.where }, 'environment assigned to another engine; handing it over');
    this.drop(c, `handed over to ${assigned}, the engine it is assigned to`);
    c.kept = undefined;
    await new Promise((resolve) => setTimeout(resolve, this.t.marginMs).unref());
    await c.backend.release(c.env, r); // also when stopping meanwhile: stop() waits for this and releases only held claims
    c.record = { ...r, holder: '' };
    c.freeSince = undefined;
  }

  private standby(c: EnvClaim, r: ClaimRecord): void {
    if (c.loggedStandby === r.holder) return;
    c.loggedStandby = r.holder;
    this.o.log.info({ env: c.env, holder: r.holder, pid: r.pid, since: r.acquiredAt, where: c.backend.where }, 'environment claimed by another engine; standing by');
  }

  private drop(c: EnvClaim, why: string): void {
    if (c.expiry) clearTimeout(c.expiry);
    c.validUntil = 0;
    if (!c.held) return;
    c.held = false;
    c.lost.abort(new Error(why));
    if (!this.stopped) this.o.log.warn({ env: c.env, why }, 'claim lost; this engine stopped writing to the environment');
    this.o.onLost?.(c.env, why);
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
