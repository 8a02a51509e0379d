import type { z } from 'zod';

/** A zod check: exactly one of `keys` is set; reported at the object itself. */
export function exactlyOne<T extends Record<string, unknown>>(keys: (keyof T & string)[]) {
  return (ctx: { value: T; issues: z.core.$ZodRawIssue[] }) => {
    const set = keys.filter((k) => ctx.value[k] !== undefined);
    if (set.length === 1) return;
    const list = keys.map((k) => `"${k}"`).join(', ');
    ctx.issues.push({
      code: 'custom',
      input: ctx.value,
      message: set.length === 0 ? `needs exactly one of ${list}` : `needs exactly one of ${list}, found ${set.map((k) => `"${k}"`).join(' and ')}`,
    });
  };
}
