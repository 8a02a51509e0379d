import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { SyncResult } from '../core/events.js';
import type { Logger } from '../log.js';
import { databaseFiles, securePrivateFile, secureStateDir } from './state-dir.js';

/** What one sync of an environment did: persisted history, shown by `keelson history`. */
export interface SyncRecord {
  id: number;
  env: string;
  revision: string;
  startedAt: string;
  durationMs: number;
  result: SyncResult;
  summary: string;
  message: string;
  changes: AppChange[];
}

export interface AppChange {
  app: string;
  action: string;
  from?: string;
  to?: string;
  message?: string;
}

/** A supervised replica, recorded so a restarted engine can re-adopt it. */
export interface ReplicaRow {
  id: string;
  env: string;
  app: string;
  pid: number;
  startTime: string;
  port: number;
  releaseId: string;
  releaseDir: string;
  releaseHash: string;
  version: string;
  specHash: string;
  logPath: string;
  startedAt: number;
}

/** What a revision applied for one app: the inventory prune works from. */
export interface InventoryRow {
  env: string;
  app: string;
  revision: string;
  specHash: string;
  version: string;
  appliedAt: string;
  spec: unknown;
}

export interface FailureRow {
  env: string;
  app: string;
  specHash: string;
  revision: string;
  message: string;
  at: string;
}

export interface StoredEvent {
  seq: number;
  time: string;
  type: string;
  env: string | null;
  app: string | null;
  data: Record<string, unknown>;
}

const schema = `
create table if not exists syncs (
  id integer primary key autoincrement, env text not null, revision text not null, started_at text not null,
  duration_ms integer not null, result text not null, summary text not null, message text not null, changes text not null);
create index if not exists syncs_env on syncs(env, id);
create table if not exists events (
  id integer primary key autoincrement, time text not null, type text not null, env text, app text, data text not null);
create table if not exists replicas (
  id text primary key, env text not null, app text not null, pid integer not null, start_time text not null,
  port integer not null, release_id text not null, release_dir text not null, release_hash text not null,
  version text not null, spec_hash text not null, log_path text not null, started_at integer not null);
create table if not exists inventory (
  env text not null, app text not null, revision text not null, spec_hash text not null, version text not null,
  applied_at text not null, spec text not null, primary key (env, app));
create table if not exists failures (
  env text not null, app text not null, spec_hash text not null, revision text not null, message text not null,
  at text not null, primary key (env, app));
create table if not exists kv (key text primary key, value text not null);
create table if not exists rollouts (env text not null, app text not null, state text not null, primary key (env, app));
`;

const maxEvents = 20_000;

/** The state dir's SQLite database (WAL): history, events, inventory, replicas, rollouts under way. Never secrets. */
export class Store {
  readonly db: Database.Database;
  private eventsSincePrune = 0;
  private readonly statements = new Map<string, Database.Statement>();

  /** `log` gets a note when an existing state dir or database file was readable by others and is tightened. */
  constructor(stateDir: string, opts: { log?: Logger } = {}) {
    secureStateDir(stateDir, opts.log);
    const file = join(stateDir, 'keelson.db');
    securePrivateFile(file, opts.log);
    for (const f of databaseFiles(file).slice(1)) if (existsSync(f)) securePrivateFile(f, opts.log);
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(schema);
  }

  close(): void {
    this.db.close();
  }

  /** A prepared statement, compiled once: the reconcile loop runs the same few queries many times a second. */
  private q(sql: string): Database.Statement {
    let st = this.statements.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      this.statements.set(sql, st);
    }
    return st;
  }

  addSync(r: Omit<SyncRecord, 'id'>): number {
    const info = this.q(
        'insert into syncs (env, revision, started_at, duration_ms, result, summary, message, changes) values (?,?,?,?,?,?,?,?)',
      )
      .run(r.env, r.revision, r.startedAt, Math.round(r.durationMs), r.result, r.summary, r.message, JSON.stringify(r.changes));
    return Number(info.lastInsertRowid);
  }

  history(opts: { env?: string; app?: string; limit?: number } = {}): SyncRecord[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (opts.env) {
      where.push('env = ?');
      args.push(opts.env);
    }
    if (opts.app) {
      where.push("exists (select 1 from json_each(syncs.changes) c where json_extract(c.value, '$.app') = ?)");
      args.push(opts.app);
    }
    const sql = `select * from syncs ${where.length ? 'where ' + where.join(' and ') : ''} order by id desc limit ?`;
    args.push(opts.limit ?? 50);
    return (this.q(sql).all(...args) as any[]).map((row) => ({
      id: row.id,
      env: row.env,
      revision: row.revision,
      startedAt: row.started_at,
      durationMs: row.duration_ms,
      result: row.result,
      summary: row.summary,
      message: row.message,
      changes: JSON.parse(row.changes),
    }));
  }

  addEvent(e: { time: string; type: string; env?: string; app?: string; data: Record<string, unknown> }): void {
    this.q('insert into events (time, type, env, app, data) values (?,?,?,?,?)')
      .run(e.time, e.type, e.env ?? null, e.app ?? null, JSON.stringify(e.data));
    if (++this.eventsSincePrune >= 1000) {
      this.eventsSincePrune = 0;
      this.q('delete from events where id <= (select max(id) from events) - ?').run(maxEvents);
    }
  }

  events(opts: { env?: string; app?: string; limit?: number } = {}): StoredEvent[] {
    const rows = this.q(
        `select * from events where (? is null or env = ?) and (? is null or app = ?) order by id desc limit ?`,
      )
      .all(opts.env ?? null, opts.env ?? null, opts.app ?? null, opts.app ?? null, opts.limit ?? 100) as any[];
    return rows.map((r) => ({ seq: r.id, time: r.time, type: r.type, env: r.env, app: r.app, data: JSON.parse(r.data) }));
  }

  putReplica(r: ReplicaRow): void {
    this.q(
        `insert or replace into replicas (id, env, app, pid, start_time, port, release_id, release_dir, release_hash,
         version, spec_hash, log_path, started_at) values (?,?,?,?,?,?,?,?,?,?,?,?,?)`,
      )
      .run(r.id, r.env, r.app, r.pid, r.startTime, r.port, r.releaseId, r.releaseDir, r.releaseHash, r.version, r.specHash, r.logPath, r.startedAt);
  }

  deleteReplica(id: string): void {
    this.q('delete from replicas where id = ?').run(id);
  }

  replicas(): ReplicaRow[] {
    return (this.q('select * from replicas').all() as any[]).map((r) => ({
      id: r.id,
      env: r.env,
      app: r.app,
      pid: r.pid,
      startTime: r.start_time,
      port: r.port,
      releaseId: r.release_id,
      releaseDir: r.release_dir,
      releaseHash: r.release_hash,
      version: r.version,
      specHash: r.spec_hash,
      logPath: r.log_path,
      startedAt: r.started_at,
    }));
  }

  putInventory(r: InventoryRow): void {
    this.q('insert or replace into inventory (env, app, revision, spec_hash, version, applied_at, spec) values (?,?,?,?,?,?,?)')
      .run(r.env, r.app, r.revision, r.specHash, r.version, r.appliedAt, JSON.stringify(r.spec));
  }

  deleteInventory(env: string, app: string): void {
    this.q('delete from inventory where env = ? and app = ?').run(env, app);
  }

  /** Environments and apps the inventory holds, without reading the specs. */
  /** Environments with at least one inventory row (one row per environment, not per app). */
  inventoryEnvs(): string[] {
    return (this.q('select distinct env from inventory').all() as { env: string }[]).map((r) => r.env);
  }

  inventoryKeys(env?: string): { env: string; app: string }[] {
    return (env ? this.q('select env, app from inventory where env = ?').all(env) : this.q('select env, app from inventory').all()) as { env: string; app: string }[];
  }

  inventory(env?: string): InventoryRow[] {
    const rows = (env
      ? this.q('select * from inventory where env = ?').all(env)
      : this.q('select * from inventory').all()) as any[];
    return rows.map((r) => ({
      env: r.env,
      app: r.app,
      revision: r.revision,
      specHash: r.spec_hash,
      version: r.version,
      appliedAt: r.applied_at,
      spec: JSON.parse(r.spec),
    }));
  }

  putFailure(f: FailureRow): void {
    this.q('insert or replace into failures (env, app, spec_hash, revision, message, at) values (?,?,?,?,?,?)')
      .run(f.env, f.app, f.specHash, f.revision, f.message, f.at);
  }

  clearFailure(env: string, app?: string): void {
    if (app) this.q('delete from failures where env = ? and app = ?').run(env, app);
    else this.q('delete from failures where env = ?').run(env);
  }

  failures(env: string): FailureRow[] {
    return (this.q('select * from failures where env = ?').all(env) as any[]).map((r) => ({
      env: r.env,
      app: r.app,
      specHash: r.spec_hash,
      revision: r.revision,
      message: r.message,
      at: r.at,
    }));
  }

  /**
   * The local target's rollouts under way as earlier versions kept them; read once at start and moved into the shared
   * checkpoint records in the key-value table (src/rollout/checkpoints.ts, src/targets/local/rollout-state.ts).
   */
  putRollout(env: string, app: string, state: unknown): void {
    this.q('insert or replace into rollouts (env, app, state) values (?,?,?)').run(env, app, JSON.stringify(state));
  }

  deleteRollout(env: string, app: string): void {
    this.q('delete from rollouts where env = ? and app = ?').run(env, app);
  }

  rollouts(): { env: string; app: string; state: unknown }[] {
    return (this.q('select * from rollouts').all() as any[]).map((r) => ({ env: r.env, app: r.app, state: JSON.parse(r.state) }));
  }

  getKv(key: string): string | undefined {
    return (this.q('select value from kv where key = ?').get(key) as { value: string } | undefined)?.value;
  }

  setKv(key: string, value: string): void {
    this.q('insert or replace into kv (key, value) values (?, ?)').run(key, value);
  }
}
