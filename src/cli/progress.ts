import { subscribeEvents } from './sse.js';

/** One line per event of a long operation in `env` (`keelson sync`): what changes as it happens. */
export function describeProgress(e: Record<string, any>, env: string): string | undefined {
  if (e.env !== env) return undefined;
  switch (e.type) {
    case 'sync.started':
      return `sync started at ${String(e.revision).slice(0, 7)}: ${e.changes} change${e.changes === 1 ? '' : 's'}`;
    case 'app.changed':
      return `  ${e.app} ${e.action}${e.message ? `: ${e.message}` : ''}`;
    case 'app.failed':
      return `  ${e.app} failed: ${String(e.message).split('\n')[0]}`;
    case 'app.rolledBack':
      return `  ${e.app} rolled back: ${e.message}`;
    case 'replica.started':
      return `  ${e.app}: replica ${e.replica} started (version ${e.version})`;
    case 'replica.ready':
      return e.ready ? `  ${e.app}: replica ${e.replica} ready` : undefined;
    case 'health.changed':
      return `  ${e.app}: ${e.from} → ${e.to}`;
    case 'sync.completed':
      return `sync ${e.result} in ${(e.durationMs / 1000).toFixed(1)} s`;
    default:
      return undefined;
  }
}

/**
 * Prints progress of a long operation on stderr while `work` runs: live lines from the event stream when the
 * engine's events are readable, otherwise a spinner on a terminal (never both, never on a pipe without events).
 */
export async function withProgress<T>(o: { server: string; headers: Record<string, string>; env: string; label: string; out?: NodeJS.WriteStream }, work: () => Promise<T>): Promise<T> {
  const out = o.out ?? process.stderr;
  out.write(`${o.label}…\n`);
  let lines = 0;
  const sub = subscribeEvents(o.server, o.headers, (e) => {
    const line = describeProgress(e, o.env);
    if (line) {
      lines++;
      out.write(line + '\n');
    }
  });
  await Promise.race([sub.ready, new Promise((r) => setTimeout(r, 1000))]);
  const started = Date.now();
  const spinner = out.isTTY
    ? setInterval(() => {
        if (lines === 0) out.write(`\r${o.label}… ${Math.round((Date.now() - started) / 1000)} s`);
      }, 500)
    : undefined;
  try {
    return await work();
  } finally {
    if (spinner) clearInterval(spinner);
    if (out.isTTY && lines === 0) out.write('\n');
    sub.close();
  }
}
