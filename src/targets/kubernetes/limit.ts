/**
 * At most `n` tasks at once, the rest queued in order. Keelson's writes to the API server go through one of these
 * per process: every environment has its own target, and together they must not flood kube-apiserver (whose
 * in-flight limits answer 429, which would fail an apply).
 */
export class Semaphore {
  private active = 0;
  private readonly queue: (() => void)[] = [];

  constructor(private readonly n: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.n) await new Promise<void>((resolve) => this.queue.push(resolve));
    else this.active++;
    try {
      return await fn();
    } finally {
      const next = this.queue.shift();
      if (next) next(); // the slot passes to the next task
      else this.active--;
    }
  }
}

/** Writes (server-side apply, dry-run) in flight to all clusters from this process. */
export const apiWrites = new Semaphore(32);
