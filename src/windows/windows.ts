/**
 * Sync windows (as in Argo CD): a window opens at each time its cron schedule matches and stays open for its
 * duration. A deny window blocks syncs while open; when any allow window is declared, syncs run only while one is
 * open. Pure functions of the windows and a clock.
 */
import type { SyncWindow } from '../core/delivery.js';
import { cronMatches, parseCron } from './cron.js';

export interface WindowVerdict {
  allowed: boolean;
  /** Why syncs wait, for status and events; empty when allowed. */
  reason: string;
  /** When syncs may run again (undefined when allowed, or when no opening was found within 60 days). */
  opensAt?: Date;
}

const minuteMs = 60_000;
const searchLimitMinutes = 60 * 24 * 60;

/** Whether `w` is open at `now`: a schedule match within the last `durationSeconds`. Returns the opening minute. */
export function openedAt(w: SyncWindow, now: Date): Date | undefined {
  const { cron } = parseCron(w.schedule);
  if (!cron) return undefined;
  const start = Math.floor(now.getTime() / minuteMs) * minuteMs;
  const minutes = Math.ceil(w.durationSeconds / 60);
  for (let i = 0; i < minutes; i++) {
    const t = new Date(start - i * minuteMs);
    // Open for durationSeconds from the matched minute.
    if (now.getTime() - t.getTime() >= w.durationSeconds * 1000) break;
    if (cronMatches(cron, t, w.timeZone === 'UTC')) return t;
  }
  return undefined;
}

function describe(w: SyncWindow): string {
  return `${w.kind} window "${w.schedule}" for ${formatSeconds(w.durationSeconds)}${w.timeZone === 'UTC' ? ' UTC' : ''}`;
}

export function formatSeconds(s: number): string {
  if (s % 86_400 === 0) return `${s / 86_400}d`;
  if (s % 3600 === 0) return `${s / 3600}h`;
  if (s % 60 === 0) return `${s / 60}m`;
  return `${s}s`;
}

interface Verdict {
  allowed: boolean;
  reason: string;
  /** Earliest time the blocking condition can end: a deny window's close, or undefined (wait for an allow window). */
  until?: Date;
}

function verdictAt(windows: SyncWindow[], now: Date, manual: boolean): Verdict {
  const active = windows.filter((w) => !(manual && w.manualSync));
  for (const w of active.filter((x) => x.kind === 'deny')) {
    const at = openedAt(w, now);
    if (at) return { allowed: false, reason: `${describe(w)} is open since ${at.toISOString()}`, until: new Date(at.getTime() + w.durationSeconds * 1000) };
  }
  const allows = windows.filter((w) => w.kind === 'allow');
  if (allows.length === 0) return { allowed: true, reason: '' };
  if (allows.some((w) => openedAt(w, now))) return { allowed: true, reason: '' };
  if (manual && allows.some((w) => w.manualSync)) return { allowed: true, reason: '' };
  return { allowed: false, reason: `outside every allow window (${allows.map(describe).join(', ')})` };
}

/** The next minute after `from` at which one of the allow windows opens. */
function nextAllowOpening(windows: SyncWindow[], from: Date, limit: number): Date | undefined {
  const crons = windows.filter((w) => w.kind === 'allow').map((w) => ({ c: parseCron(w.schedule).cron, utc: w.timeZone === 'UTC' }));
  const base = Math.floor(from.getTime() / minuteMs) * minuteMs;
  for (let i = 1; i <= limit; i++) {
    const t = new Date(base + i * minuteMs);
    if (crons.some(({ c, utc }) => c && cronMatches(c, t, utc))) return t;
  }
  return undefined;
}

/** Whether an environment may sync at `now`; `manual` for `keelson sync`. */
export function checkWindows(windows: SyncWindow[] | undefined, now: Date, opts: { manual?: boolean } = {}): WindowVerdict {
  if (!windows?.length) return { allowed: true, reason: '' };
  const manual = opts.manual ?? false;
  const first = verdictAt(windows, now, manual);
  if (first.allowed) return { allowed: true, reason: '' };
  // Jump from one candidate time to the next: a deny window closing, or an allow window opening.
  const end = now.getTime() + searchLimitMinutes * minuteMs;
  let t = now;
  let v = first;
  for (let n = 0; n < 10_000 && t.getTime() <= end; n++) {
    const next = v.until ?? nextAllowOpening(windows, t, Math.ceil((end - t.getTime()) / minuteMs));
    if (!next) break;
    t = new Date(Math.max(next.getTime(), t.getTime() + 1000));
    v = verdictAt(windows, t, manual);
    if (v.allowed) return { allowed: false, reason: `${first.reason}; syncs resume at ${t.toISOString()}`, opensAt: t };
  }
  return { allowed: false, reason: first.reason };
}
