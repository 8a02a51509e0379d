/**
 * The one loop that owns retries: a keyed queue that de-duplicates, runs one reconcile per key at a time,
 * backs off exponentially per key on error and honours `requeueAfter` on success.
 * A reconcile step reports; it never sleeps or retries on its own.
 */
export interface ReconcileResult {
  requeueAfterMs?: number;
}

export interface ReconcilerOptions {
  reconcile: (key: string) => Promise<ReconcileResult>;
  onError: (key: string, err: unknown, retryInMs: number) => void;
  /** First retry delay after an error; doubles per consecutive failure up to `maxBackoffMs`. */
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  /** Spread of requeueAfter (0.1 = ±10%) so many keys don't wake together. */
  jitter?: number;
}

export class Reconciler {
  private readonly dirty = new Set<string>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly failures = new Map<string, number>();
  private readonly waiters = new Map<string, (() => void)[]>();
  private stopped = false;

  constructor(private readonly o: ReconcilerOptions) {}

  /** Queues `key` now. Resolves after a reconcile of it that started after this call has finished. */
  enqueue(key: string): Promise<void> {
    if (this.stopped) return Promise.resolve();
    const done = new Promise<void>((resolve) => {
      const list = this.waiters.get(key) ?? [];
      list.push(resolve);
      this.waiters.set(key, list);
    });
    this.clearTimer(key);
    this.dirty.add(key);
    this.pump(key);
    return done;
  }

  enqueueAfter(key: string, ms: number): void {
    if (this.stopped) return;
    const existing = this.timers.get(key);
    if (existing) clearTimeout(existing);
    const t = setTimeout(() => {
      this.timers.delete(key);
      void this.enqueue(key);
    }, ms);
    t.unref();
    this.timers.set(key, t);
  }

  isRunning(key: string): boolean {
    return this.running.has(key);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    await Promise.allSettled([...this.running.values()]);
  }

  private clearTimer(key: string): void {
    const t = this.timers.get(key);
    if (t) clearTimeout(t);
    this.timers.delete(key);
  }

  private pump(key: string): void {
    if (this.running.has(key) || !this.dirty.has(key) || this.stopped) return;
    this.dirty.delete(key);
    const waiters = this.waiters.get(key) ?? [];
    this.waiters.delete(key);
    const run = this.runOnce(key).finally(() => {
      this.running.delete(key);
      for (const w of waiters) w();
      this.pump(key);
    });
    this.running.set(key, run);
  }

  private async runOnce(key: string): Promise<void> {
    try {
      const result = await this.o.reconcile(key);
      this.failures.delete(key);
      if (result.requeueAfterMs !== undefined && !this.dirty.has(key)) {
        const j = this.o.jitter ?? 0.1;
        this.enqueueAfter(key, Math.round(result.requeueAfterMs * (1 - j + Math.random() * 2 * j)));
      }
    } catch (err) {
      const n = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, n);
      const delay = Math.min((this.o.baseBackoffMs ?? 1000) * 2 ** (n - 1), this.o.maxBackoffMs ?? 5 * 60_000);
      this.o.onError(key, err, delay);
      if (!this.dirty.has(key)) this.enqueueAfter(key, delay);
    }
  }
}
