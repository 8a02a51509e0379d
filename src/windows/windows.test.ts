import { describe, expect, it } from 'vitest';
import type { SyncWindow } from '../core/delivery.js';
import { cronMatches, parseCron } from './cron.js';
import { checkWindows } from './windows.js';

const w = (kind: 'allow' | 'deny', schedule: string, durationSeconds: number, extra: Partial<SyncWindow> = {}): SyncWindow => ({
  kind,
  schedule,
  durationSeconds,
  timeZone: 'UTC',
  manualSync: false,
  ...extra,
});
const at = (iso: string) => new Date(iso);

describe('cron', () => {
  it('matches lists, ranges, steps and names', () => {
    const { cron } = parseCron('*/15 9-17 * jan-mar mon,fri');
    expect(cron).toBeDefined();
    expect(cronMatches(cron!, at('2024-01-05T09:30:00Z'), true)).toBe(true); // Friday
    expect(cronMatches(cron!, at('2024-01-05T09:31:00Z'), true)).toBe(false);
    expect(cronMatches(cron!, at('2024-01-06T09:30:00Z'), true)).toBe(false); // Saturday
    expect(cronMatches(cron!, at('2024-04-05T09:30:00Z'), true)).toBe(false); // April
  });

  it('treats 7 as Sunday and ORs restricted day fields', () => {
    expect(cronMatches(parseCron('0 0 * * 7').cron!, at('2024-01-07T00:00:00Z'), true)).toBe(true);
    const both = parseCron('0 0 1 * 1').cron!;
    expect(cronMatches(both, at('2024-02-01T00:00:00Z'), true)).toBe(true); // the 1st, a Thursday
    expect(cronMatches(both, at('2024-02-05T00:00:00Z'), true)).toBe(true); // a Monday
  });

  it('explains bad expressions', () => {
    expect(parseCron('0 0 * *').error).toMatch(/must have 5 fields/);
    expect(parseCron('61 * * * *').error).toMatch(/invalid minute "61"/);
    expect(parseCron('0 5-2 * * *').error).toMatch(/runs backwards/);
    expect(parseCron('@daily').cron).toBeDefined();
  });
});

describe('sync windows', () => {
  const weekend = [w('deny', '0 0 * * 6', 48 * 3600)];

  it('denies inside a deny window and says when syncs resume', () => {
    const v = checkWindows(weekend, at('2024-01-07T12:00:00Z')); // Sunday noon
    expect(v.allowed).toBe(false);
    expect(v.opensAt?.toISOString()).toBe('2024-01-08T00:00:00.000Z');
    expect(v.reason).toMatch(/deny window "0 0 \* \* 6" for 2d UTC is open since 2024-01-06T00:00:00.000Z/);
  });

  it('allows outside a deny window', () => {
    expect(checkWindows(weekend, at('2024-01-08T00:00:00Z')).allowed).toBe(true);
    expect(checkWindows(weekend, at('2024-01-05T23:59:00Z')).allowed).toBe(true);
  });

  it('with allow windows, allows only inside one', () => {
    const office = [w('allow', '0 9 * * 1-5', 8 * 3600)];
    expect(checkWindows(office, at('2024-01-08T10:00:00Z')).allowed).toBe(true);
    const v = checkWindows(office, at('2024-01-08T18:00:00Z'));
    expect(v.allowed).toBe(false);
    expect(v.reason).toMatch(/outside every allow window/);
    expect(v.opensAt?.toISOString()).toBe('2024-01-09T09:00:00.000Z');
  });

  it('deny wins over allow, and manualSync lets a manual sync through', () => {
    const ws = [w('allow', '* * * * *', 60), w('deny', '0 0 * * *', 3600, { manualSync: true })];
    expect(checkWindows(ws, at('2024-01-08T00:30:00Z')).allowed).toBe(false);
    expect(checkWindows(ws, at('2024-01-08T00:30:00Z'), { manual: true }).allowed).toBe(true);
  });
});
