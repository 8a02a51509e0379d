import type { Context, MiddlewareHandler } from 'hono';

export interface RateLimitOptions {
  /** Requests allowed in a burst. */
  burst: number;
  /** Sustained requests per second (the bucket refills at this rate). */
  perSecond: number;
  /** The client a request counts against (e.g. its remote address). */
  keyOf: (c: Context) => string;
  now?: () => number;
}

/**
 * A token bucket per client: `burst` requests at once, then `perSecond`. Over the limit → 429 with Retry-After.
 * Buckets of quiet clients are dropped so the map stays small.
 */
export function rateLimit(o: RateLimitOptions): MiddlewareHandler {
  const buckets = new Map<string, { tokens: number; at: number }>();
  const now = o.now ?? (() => Date.now());
  return async (c, next) => {
    const t = now();
    const key = o.keyOf(c);
    const b = buckets.get(key) ?? { tokens: o.burst, at: t };
    b.tokens = Math.min(o.burst, b.tokens + ((t - b.at) / 1000) * o.perSecond);
    b.at = t;
    if (buckets.size > 10_000) for (const [k, v] of buckets) if (v.tokens >= o.burst) buckets.delete(k);
    buckets.set(key, b);
    if (b.tokens < 1) {
      const retry = Math.ceil((1 - b.tokens) / o.perSecond);
      return c.json({ error: 'TooManyRequests', message: `rate limit exceeded: at most ${o.perSecond}/s after a burst of ${o.burst}; retry in ${retry} s` }, 429, { 'retry-after': String(retry) });
    }
    b.tokens -= 1;
    return next();
  };
}
