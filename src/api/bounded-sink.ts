/**
 * A stream to one client (server-sent events, log follow) that never lets memory grow: chunks are written one at a
 * time, each write awaited (the HTTP server stops the flow while the socket's `write()` returns false and resumes
 * on 'drain'); while a write waits, new chunks queue up to `maxBytes`. A client so slow that the queue would go
 * past it is dropped (`onOverflow`), never buffered without bound.
 */
export interface BoundedSinkOptions {
  /** Bytes that may wait for a slow client. Default 1 MiB. */
  maxBytes?: number;
  /** The client fell too far behind: close its connection. Called once. */
  onOverflow: (queuedBytes: number) => void;
}

export const defaultStreamBufferBytes = 1024 * 1024;

export class BoundedSink {
  private readonly queue: string[] = [];
  private queued = 0;
  private writing = false;
  private dropped = false;
  private readonly maxBytes: number;

  constructor(
    private readonly write: (chunk: string) => Promise<unknown>,
    private readonly o: BoundedSinkOptions,
  ) {
    this.maxBytes = o.maxBytes ?? defaultStreamBufferBytes;
  }

  /** Bytes waiting for the client now. */
  get pendingBytes(): number {
    return this.queued;
  }

  get isDropped(): boolean {
    return this.dropped;
  }

  /** Queues `chunk`; false once the client was dropped (nothing more is written). */
  push(chunk: string): boolean {
    if (this.dropped) return false;
    const size = Buffer.byteLength(chunk);
    if (this.queued + size > this.maxBytes && this.writing) {
      this.dropped = true;
      this.queue.length = 0;
      const was = this.queued;
      this.queued = 0;
      this.o.onOverflow(was + size);
      return false;
    }
    this.queue.push(chunk);
    this.queued += size;
    if (!this.writing) void this.pump();
    return true;
  }

  /** Stops writing (the client went away). */
  close(): void {
    this.dropped = true;
    this.queue.length = 0;
    this.queued = 0;
  }

  private async pump(): Promise<void> {
    this.writing = true;
    try {
      while (this.queue.length > 0 && !this.dropped) {
        const chunk = this.queue.shift()!;
        await this.write(chunk);
        this.queued -= Buffer.byteLength(chunk);
      }
    } finally {
      this.writing = false;
    }
  }
}
