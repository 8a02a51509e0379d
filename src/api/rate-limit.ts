import type { Context, MiddlewareHandler } from 'hono';

export interface BucketOptions {
  /** Requests allowed in a burst. */
  burst: number;
  /** Sustained requests per second (the bucket refills at this rate). */
  perSecond: number;
  now?: () => number;
}

/** A token bucket per client; buckets of quiet clients are dropped so the map stays small. */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly now: () => number;

  constructor(private readonly o: BucketOptions) {
    this.now = o.now ?? (() => Date.now());
  }

  /** Seconds until `key` has a token again; undefined when it has one now. */
  wait(key: string): number | undefined {
    const b = this.refill(key);
    return b.tokens < 1 ? Math.ceil((1 - b.tokens) / this.o.perSecond) : undefined;
  }

  /** Takes a token from `key`'s bucket; returns the seconds to wait (taking nothing) when it has none. */
  take(key: string): number | undefined {
    const wait = this.wait(key);
    if (wait === undefined) this.buckets.get(key)!.tokens -= 1;
    return wait;
  }

  private refill(key: string): { tokens: number; at: number } {
    const t = this.now();
    const b = this.buckets.get(key) ?? { tokens: this.o.burst, at: t };
    b.tokens = Math.min(this.o.burst, b.tokens + ((t - b.at) / 1000) * this.o.perSecond);
    b.at = t;
    if (this.buckets.size > 10_000) for (const [k, v] of this.buckets) if (v.tokens >= this.o.burst) this.buckets.delete(k);
    this.buckets.set(key, b);
    return b;
  }
}

export interface RateLimitOptions extends BucketOptions {
  /** The client a request counts against (e.g. its remote address). */
  keyOf: (c: Context) => string;
}

/**
 * A token bucket per client: `burst` requests at once, then `perSecond`. Over the limit → 429 with Retry-After.
 */
export function rateLimit(o: RateLimitOptions): MiddlewareHandler {
  const buckets = new TokenBuckets(o);
  return async (c, next) => {
    const retry = buckets.take(o.keyOf(c));
    if (retry !== undefined) {
      return c.json({ error: 'TooManyRequests', message: `rate limit exceeded: at most ${o.perSecond}/s after a burst of ${o.burst}; retry in ${retry} s` }, 429, { 'retry-after': String(retry) });
    }
    return next();
  };
}

/**
 * Failed authentication per client: each answer 401 takes a token; a client with none left gets 429 with
 * Retry-After for every request that needs a token (a right guess included), until its bucket refills.
 */
export function failedAuthLimit(o: { perMinute: number; keyOf: (c: Context) => string; now?: () => number }): MiddlewareHandler {
  const buckets = new TokenBuckets({ burst: o.perMinute, perSecond: o.perMinute / 60, now: o.now });
  return async (c, next) => {
    const key = o.keyOf(c);
    const retry = buckets.wait(key);
    if (retry !== undefined && c.req.header('authorization') !== undefined) {
      return c.json({ error: 'TooManyRequests', message: `too many failed authentications from this address: at most ${o.perMinute} a minute; retry in ${retry} s` }, 429, { 'retry-after': String(retry) });
    }
    await next();
    // Only a credential that was refused counts: a request that sent none (a first page load, `curl /metrics`) is
    // asked to authenticate, not guessing.
    if (c.res.status === 401 && c.req.header('authorization') !== undefined) buckets.take(key);
  };
}
