import { formatIssue, type Issue } from './types.js';

/** Invalid desired state: not retried until the desired state changes. */
export class ValidationError extends Error {
  constructor(readonly issues: Issue[]) {
    super(issues.map(formatIssue).join('\n'));
    this.name = 'ValidationError';
  }
}

/** An error that retrying will not fix (bad config, missing artifact). */
export class TerminalError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TerminalError';
  }
}

/**
 * The target could not be reached, or answered with a server error: nothing is known to be wrong with the desired
 * state, so the reconciler retries with backoff instead of holding the spec as failed until the next commit.
 */
export class TransientError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TransientError';
  }
}

/** A failure reported to a CLI user with an exit code and no stack. */
export class ExitError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
    this.name = 'ExitError';
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
