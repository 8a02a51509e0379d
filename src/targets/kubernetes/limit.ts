import { availableParallelism } from 'node:os';

/**
 * At most `n` tasks at once, the rest queued. Keelson's writes to the API server go through one of these per
 * process: every environment has its own target, and together they must not flood kube-apiserver (whose in-flight
 * limits answer 429, which would fail an apply).
 *
 * The queue is ordered by ticket, not by arrival: an app's apply takes one ticket when it starts and every write of
 * it waits with that ticket, so the app that started first finishes first. In arrival order, a cold sync of a
 * thousand apps would write every app's ServiceAccount, then every ConfigMap, then every Service, and only then the
 * first Deployment: the cluster's controllers would idle while Keelson writes and then work through a thousand
 * rollouts at once. By ticket, Deployments reach the cluster from the first seconds on, and the controllers work
 * while Keelson still writes.
 */
export class Semaphore {
  private active = 0;
  private next = 0;
  /** Waiting tasks: a binary heap by (ticket, arrival). */
  private readonly queue: { ticket: number; seq: number; go: () => void }[] = [];
  private arrivals = 0;

  constructor(private readonly n: number) {}

  /** A place in the queue: tasks run with an earlier ticket go before those with a later one (ties in arrival order). */
  ticket(): number {
    return this.next++;
  }

  async run<T>(fn: () => Promise<T>, ticket: number = this.ticket()): Promise<T> {
    if (this.active >= this.n) await new Promise<void>((go) => this.push({ ticket, seq: this.arrivals++, go }));
    else this.active++;
    try {
      return await fn();
    } finally {
      const next = this.pop();
      if (next) next.go(); // the slot passes to the next task
      else this.active--;
    }
  }

  private before(a: { ticket: number; seq: number }, b: { ticket: number; seq: number }): boolean {
    return a.ticket < b.ticket || (a.ticket === b.ticket && a.seq < b.seq);
  }

  private push(e: { ticket: number; seq: number; go: () => void }): void {
    const q = this.queue;
    q.push(e);
    for (let i = q.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!this.before(q[i], q[p])) break;
      [q[i], q[p]] = [q[p], q[i]];
      i = p;
    }
  }

  private pop(): { go: () => void } | undefined {
    const q = this.queue;
    const top = q[0];
    const last = q.pop();
    if (q.length && last) {
      q[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < q.length && this.before(q[l], q[m])) m = l;
        if (r < q.length && this.before(q[r], q[m])) m = r;
        if (m === i) break;
        [q[i], q[m]] = [q[m], q[i]];
        i = m;
      }
    }
    return top;
  }
}

/** Writes (server-side apply, dry-run) in flight to all clusters from this process. */
export const apiWrites = new Semaphore(32);

/**
 * Renderer processes (`helm template`, `jsonnet`, `kustomize build`) running at once in this process, over every
 * environment: each is CPU and memory for a moment, and hundreds of apps are applied at once (their applies mostly
 * wait for rollouts). Twice the cores, at least 4: a render that asks the cluster (Helm `lookup`) mostly waits.
 */
export const renders = new Semaphore(Math.max(4, 2 * availableParallelism()));
