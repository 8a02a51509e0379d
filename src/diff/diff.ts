/** One field that differs between live and desired, addressed by a dotted path (`vars.GREETING`). */
export interface FieldChange {
  path: string;
  live?: unknown;
  desired?: unknown;
}

const ignored = new Set(['source', 'env', 'name']);

/** Field-by-field difference of two app specs (pure). Arrays compare as a whole. */
export function diffSpecs(live: unknown, desired: unknown, prefix = ''): FieldChange[] {
  if (isObject(live) && isObject(desired)) {
    const keys = [...new Set([...Object.keys(live), ...Object.keys(desired)])].sort();
    return keys
      .filter((k) => !(prefix === '' && ignored.has(k)))
      .flatMap((k) => diffSpecs(live[k], desired[k], prefix ? `${prefix}.${k}` : k));
  }
  if (JSON.stringify(live) === JSON.stringify(desired)) return [];
  return [{ path: prefix, live, desired }];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function formatChange(c: FieldChange): string {
  const show = (v: unknown) => (v === undefined ? '(none)' : JSON.stringify(v));
  return `${c.path}: ${show(c.live)} → ${show(c.desired)}`;
}
