import type Database from 'better-sqlite3';

/** One action someone took through the API: who, what, when, result. Never secrets (no tokens, no bodies). */
export interface AuditEntry {
  id: number;
  time: string;
  /** Token name, `anonymous`, or `unauthenticated` for a request without a valid token. */
  actor: string;
  role: string | null;
  /** e.g. `sync`, `pause`, `resume`, `webhook`. */
  action: string;
  /** What it acted on: the request path, e.g. `/api/v1/environments/dev/sync`. */
  target: string;
  /** `succeeded`, `failed` or `denied`. */
  result: 'succeeded' | 'failed' | 'denied';
  status: number;
  message: string;
}

const schema = `
create table if not exists audit (
  id integer primary key autoincrement, time text not null, actor text not null, role text, action text not null,
  target text not null, result text not null, status integer not null, message text not null);
`;

const maxEntries = 100_000;

/** The audit log: its own table in the store's database. */
export class AuditLog {
  private sincePrune = 0;

  constructor(private readonly db: Database.Database) {
    db.exec(schema);
  }

  record(e: Omit<AuditEntry, 'id' | 'time'> & { time?: string }): AuditEntry {
    const time = e.time ?? new Date().toISOString();
    const message = e.message.slice(0, 2000);
    const info = this.db
      .prepare('insert into audit (time, actor, role, action, target, result, status, message) values (?,?,?,?,?,?,?,?)')
      .run(time, e.actor, e.role, e.action, e.target, e.result, e.status, message);
    if (++this.sincePrune >= 1000) {
      this.sincePrune = 0;
      this.db.prepare('delete from audit where id <= (select max(id) from audit) - ?').run(maxEntries);
    }
    return { ...e, id: Number(info.lastInsertRowid), time, message };
  }

  /** Newest first. */
  list(opts: { limit?: number; before?: number; actor?: string; action?: string } = {}): AuditEntry[] {
    const rows = this.db
      .prepare(
        `select * from audit where (? is null or id < ?) and (? is null or actor = ?) and (? is null or action = ?)
         order by id desc limit ?`,
      )
      .all(opts.before ?? null, opts.before ?? null, opts.actor ?? null, opts.actor ?? null, opts.action ?? null, opts.action ?? null, opts.limit ?? 100) as any[];
    return rows.map((r) => ({
      id: r.id,
      time: r.time,
      actor: r.actor,
      role: r.role,
      action: r.action,
      target: r.target,
      result: r.result,
      status: r.status,
      message: r.message,
    }));
  }
}
