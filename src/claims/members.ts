/**
 * Membership: which engines are alive, so that environments can be spread over them (rendezvous.ts). Each engine
 * announces itself and renews its announcement like a claim (same timings); the members are the announcements not
 * expired. Two backends, like the claims: a Lease per engine (`keelson-member-<hash>`) in one namespace every engine
 * of the cluster shares, or a member file per engine in the claims dir of the host.
 *
 * Being wrong about membership costs balance, never safety: who writes to an environment is decided by its claim.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { errorMessage } from '../core/errors.js';
import type { Logger } from '../log.js';
import { claimTimings } from './claim.js';

/** A member's announcement as read back. */
export interface MemberRecord {
  id: string;
  renewedAt: string;
  durationMs: number;
  /** Changes with every renewal (a member seen unchanged for a whole duration is gone, whatever the clocks say). */
  version: string;
}

export interface MemberBackend {
  /** Where members are kept, for logs and status. */
  readonly where: string;
  announce(id: string, durationMs: number): Promise<void>;
  list(): Promise<MemberRecord[]>;
  /** Removes the announcement (a clean stop): the others rebalance at once. */
  leave(id: string): Promise<void>;
  close?(): void;
}

/** 12 hex digits naming a member in Lease and file names. */
export function memberKey(id: string): string {
  return createHash('sha256').update(id).digest('hex').slice(0, 12);
}

export interface MembershipOptions {
  id: string;
  backend: MemberBackend;
  log: Logger;
  durationMs?: number;
  renewMs?: number;
  /** The member set changed (as this engine sees it). */
  onChange?: (members: string[]) => void;
}

export class Membership {
  readonly id: string;
  private live: string[];
  private readonly seen = new Map<string, { version: string; at: number }>();
  private timer?: NodeJS.Timeout;
  private busy?: Promise<void>;
  private stopped = false;
  private readonly durationMs: number;
  private readonly renewMs: number;
  private first?: Promise<void>;
  error?: string;

  constructor(private readonly o: MembershipOptions) {
    this.id = o.id;
    this.live = [o.id];
    const t = claimTimings({ durationMs: o.durationMs, renewMs: o.renewMs });
    this.durationMs = t.durationMs;
    this.renewMs = t.renewMs;
  }

  get where(): string {
    return this.o.backend.where;
  }

  /** Announces this engine and starts renewing; resolves after the first announcement and look. */
  start(): Promise<void> {
    this.first ??= this.tick();
    return this.first;
  }

  /** The live members (sorted), this engine always among them. */
  members(): string[] {
    return this.live;
  }

  /** Stops renewing; `leave` removes the announcement (a crash does not: the others notice once it expired). */
  async stop(opts: { leave: boolean } = { leave: true }): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.busy?.catch(() => {});
    if (opts.leave) {
      await this.o.backend.leave(this.id).catch((err) => this.o.log.warn({ err: errorMessage(err), where: this.where }, 'membership could not be withdrawn; the others notice once it expired'));
    }
    this.o.backend.close?.();
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    this.busy = this.look();
    await this.busy;
    this.busy = undefined;
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), this.renewMs);
    this.timer.unref();
  }

  private async look(): Promise<void> {
    try {
      await this.o.backend.announce(this.id, this.durationMs);
      const records = await this.o.backend.list();
      const now = performance.now();
      const ids = new Set<string>([this.id]);
      for (const r of records) {
        const s = this.seen.get(r.id);
        if (!s || s.version !== r.version) this.seen.set(r.id, { version: r.version, at: now });
        const unchangedFor = now - this.seen.get(r.id)!.at;
        // One clock in the cluster is assumed for membership (a wrong guess costs balance only); a record that did
        // not change for a whole duration is gone whatever the clocks say.
        if (Date.parse(r.renewedAt) + r.durationMs > Date.now() && unchangedFor <= r.durationMs) ids.add(r.id);
      }
      for (const id of this.seen.keys()) if (!records.some((r) => r.id === id)) this.seen.delete(id);
      const next = [...ids].sort();
      this.error = undefined;
      if (next.join('\n') !== this.live.join('\n')) {
        const joined = next.filter((m) => !this.live.includes(m));
        const left = this.live.filter((m) => !next.includes(m));
        this.live = next;
        this.o.log.info({ members: next.length, joined: joined.join(', ') || undefined, left: left.join(', ') || undefined, where: this.where }, 'engines sharing the environments changed');
        this.o.onChange?.(next);
      }
    } catch (err) {
      const was = this.error;
      this.error = errorMessage(err);
      // Said once per cause. The last members seen stay meanwhile: balance may suffer, never safety (claims decide).
      if (this.error !== was) this.o.log.warn({ err: this.error, where: this.where }, 'membership could not be renewed or read; retrying');
    }
  }
}

/** Members of one host: `<scope>.member.<key>.json` files in the claims dir (one clock: renewal times are exact). */
export class FileMembers implements MemberBackend {
  readonly where: string;
  private ready?: Promise<unknown>;

  constructor(
    private readonly dir: string,
    private readonly scope: string,
  ) {
    this.where = dir;
  }

  private file(id: string): string {
    return join(this.dir, `${this.scope}.member.${memberKey(id)}.json`);
  }

  async announce(id: string, durationMs: number): Promise<void> {
    this.ready ??= mkdir(this.dir, { recursive: true, mode: 0o700 });
    await this.ready;
    const tmp = join(this.dir, `.${this.scope}.member.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    await writeFile(tmp, `${JSON.stringify({ id, host: hostname(), pid: process.pid, renewedAt: new Date().toISOString(), durationMs })}\n`, { mode: 0o600, flag: 'wx' });
    await rename(tmp, this.file(id)).catch(async (err) => {
      await unlink(tmp).catch(() => {});
      throw err;
    });
  }

  async list(): Promise<MemberRecord[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: MemberRecord[] = [];
    for (const n of names.filter((x) => x.startsWith(`${this.scope}.member.`) && x.endsWith('.json'))) {
      try {
        const d = JSON.parse(await readFile(join(this.dir, n), 'utf8')) as { id: string; renewedAt: string; durationMs: number };
        if (typeof d.id === 'string' && typeof d.renewedAt === 'string') out.push({ id: d.id, renewedAt: d.renewedAt, durationMs: Number(d.durationMs) || 0, version: d.renewedAt });
      } catch {
        // Removed meanwhile (a member left), or not ours: not a member.
      }
    }
    return out;
  }

  async leave(id: string): Promise<void> {
    await unlink(this.file(id)).catch((err) => {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    });
  }
}
