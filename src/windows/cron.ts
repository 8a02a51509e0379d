/**
 * A small five-field cron matcher (minute hour day-of-month month day-of-week), as Vixie cron reads it:
 * `*`, lists, ranges, steps, month and day names, `7` = Sunday, and the `@hourly`…`@yearly` shorthands.
 * When both day fields are restricted, a day matches if either does.
 */

export interface Cron {
  minute: Set<number>;
  hour: Set<number>;
  dom: Set<number>;
  month: Set<number>;
  dow: Set<number>;
  domAny: boolean;
  dowAny: boolean;
}

const aliases: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};
const monthNames = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const dayNames = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

interface FieldDef {
  label: string;
  min: number;
  max: number;
  names?: string[];
  namesFrom?: number;
}
const fields: FieldDef[] = [
  { label: 'minute', min: 0, max: 59 },
  { label: 'hour', min: 0, max: 23 },
  { label: 'day of month', min: 1, max: 31 },
  { label: 'month', min: 1, max: 12, names: monthNames, namesFrom: 1 },
  { label: 'day of week', min: 0, max: 7, names: dayNames, namesFrom: 0 },
];

/** Parses an expression; `error` says what is wrong in words a user can act on. */
export function parseCron(expr: string): { cron?: Cron; error?: string } {
  const text = aliases[expr.trim().toLowerCase()] ?? expr.trim();
  const parts = text.split(/\s+/);
  if (parts.length !== 5) return { error: `"${expr}" must have 5 fields (minute hour day-of-month month day-of-week), found ${parts.length}` };
  const sets: Set<number>[] = [];
  for (let i = 0; i < 5; i++) {
    const r = parseField(parts[i], fields[i]);
    if (typeof r === 'string') return { error: `"${expr}": ${r}` };
    sets.push(r);
  }
  const dow = new Set([...sets[4]].map((d) => (d === 7 ? 0 : d)));
  return {
    cron: { minute: sets[0], hour: sets[1], dom: sets[2], month: sets[3], dow, domAny: parts[2] === '*' || parts[2] === '?', dowAny: parts[4] === '*' || parts[4] === '?' },
  };
}

function parseField(text: string, f: FieldDef): Set<number> | string {
  const out = new Set<number>();
  for (const item of text.split(',')) {
    const m = /^([^/]+)(?:\/(\d+))?$/.exec(item);
    if (!m) return `invalid ${f.label} "${item}"`;
    const step = m[2] === undefined ? 1 : Number(m[2]);
    if (step < 1) return `step of ${f.label} must be at least 1`;
    let lo: number;
    let hi: number;
    if (m[1] === '*' || m[1] === '?') {
      lo = f.min;
      hi = f.max;
    } else {
      const [a, b] = m[1].split('-');
      const va = value(a, f);
      const vb = b === undefined ? (m[2] !== undefined ? f.max : va) : value(b, f);
      if (va === undefined || vb === undefined || m[1].split('-').length > 2) return `invalid ${f.label} "${item}" (allowed ${f.min}-${f.max}${f.names ? ` or ${f.names[0]}…` : ''})`;
      if (va > vb) return `${f.label} range "${m[1]}" runs backwards`;
      lo = va;
      hi = vb;
    }
    for (let v = lo; v <= hi; v += step) out.add(v);
  }
  return out;
}

function value(text: string, f: FieldDef): number | undefined {
  const lower = text.toLowerCase();
  const i = f.names?.indexOf(lower) ?? -1;
  if (i >= 0) return i + (f.namesFrom ?? 0);
  if (!/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  return n >= f.min && n <= f.max ? n : undefined;
}

/** Whether the minute containing `d` matches, read in UTC or in the local time zone. */
export function cronMatches(c: Cron, d: Date, utc: boolean): boolean {
  const min = utc ? d.getUTCMinutes() : d.getMinutes();
  const hour = utc ? d.getUTCHours() : d.getHours();
  const dom = utc ? d.getUTCDate() : d.getDate();
  const month = (utc ? d.getUTCMonth() : d.getMonth()) + 1;
  const dow = utc ? d.getUTCDay() : d.getDay();
  if (!c.minute.has(min) || !c.hour.has(hour) || !c.month.has(month)) return false;
  const domOk = c.dom.has(dom);
  const dowOk = c.dow.has(dow);
  if (c.domAny || c.dowAny) return domOk && dowOk;
  return domOk || dowOk;
}
