/**
 * Runs one job at a time; while one runs, further requests collapse into a single follow-up run of the newest
 * request. The engine loads revisions through it, so a revision fetched later can never be overtaken by an older
 * one that happened to finish rendering last.
 */
export class LatestWins<T> {
  private running?: Promise<void>;
  private queued?: { item: T; done: Promise<void>; resolve: () => void };

  /** `run` must not throw (a rejection is swallowed so the queue keeps moving). */
  constructor(private readonly run: (item: T) => Promise<void>) {}

  /** Runs `item` now or after the running job; resolves once it, or a request made after it, has run. */
  request(item: T): Promise<void> {
    if (this.queued) this.queued.item = item;
    else {
      let resolve!: () => void;
      const done = new Promise<void>((r) => (resolve = r));
      this.queued = { item, done, resolve };
    }
    const { done } = this.queued;
    this.pump();
    return done;
  }

  /** The request waiting for the running job to finish, if any. */
  get pending(): T | undefined {
    return this.running ? this.queued?.item : undefined;
  }

  /** Resolves once nothing runs or waits (what has been requested so far has run). */
  settled(): Promise<void> {
    return this.queued?.done ?? this.running ?? Promise.resolve();
  }

  private pump(): void {
    if (this.running || !this.queued) return;
    const { item, resolve } = this.queued;
    this.queued = undefined;
    this.running = this.run(item)
      .catch(() => undefined)
      .then(() => {
        this.running = undefined;
        resolve();
        this.pump();
      });
  }
}
