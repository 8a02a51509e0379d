/** `keelson run` (a one-off in an app's release) and `keelson where APP`: clients of a running engine. */
import { ExitError } from '../core/errors.js';
import { formatWhere, type WhereView } from '../environments/where.js';
import type { RunFrame } from '../run/one-off.js';
import { parse } from './args.js';
import { clientFlags, connection, request } from './engine-client.js';

export async function where(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, { ...clientFlags, json: { type: 'boolean' } }, true);
  if (positionals.length === 0) throw new ExitError(2, 'usage: keelson where APP... [--json]');
  const conn = connection(values);
  const views: WhereView[] = [];
  for (const app of positionals) views.push((await (await request(conn, `/api/v1/apps/${encodeURIComponent(app)}/where`)).json()) as WhereView);
  if (values.json) console.log(JSON.stringify(views.length === 1 ? views[0] : views, null, 2));
  else console.log(views.map((v) => `${positionals.length > 1 ? `${v.app}:\n` : ''}${formatWhere(v)}`).join('\n\n'));
}

/** Streams the one-off's output to ours and exits with its exit code (128+n for a signal, like a shell). */
export async function runOneOff(argv: string[]): Promise<void> {
  const dash = argv.indexOf('--');
  if (dash < 0 || dash === argv.length - 1) throw new ExitError(2, 'usage: keelson run --env E --app A [--timeout 10m] -- CMD [ARGS...]');
  const { values } = parse(argv.slice(0, dash), { ...clientFlags, env: { type: 'string' }, app: { type: 'string' }, timeout: { type: 'string' } });
  if (!values.env || !values.app) throw new ExitError(2, 'keelson run needs --env and --app');
  const conn = connection(values);
  const { parseDuration } = await import('./args.js');
  const body = { argv: argv.slice(dash + 1), ...(values.timeout ? { timeoutSeconds: parseDuration(values.timeout) / 1000 } : {}) };
  const res = await request(conn, `/api/v1/environments/${encodeURIComponent(values.env)}/apps/${encodeURIComponent(values.app)}/run`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  let buffer = '';
  let exit: number | undefined;
  const handle = (line: string) => {
    if (!line.trim()) return;
    const f = JSON.parse(line) as RunFrame;
    if ('stream' in f) (f.stream === 'stdout' ? process.stdout : process.stderr).write(f.data);
    else if ('exit' in f) exit = f.exit.code ?? 128 + signalNumber(f.exit.signal);
    else if ('error' in f) throw new ExitError(1, f.error);
  };
  const decoder = new TextDecoder();
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let i: number;
    while ((i = buffer.indexOf('\n')) >= 0) {
      handle(buffer.slice(0, i));
      buffer = buffer.slice(i + 1);
    }
  }
  handle(buffer);
  if (exit === undefined) throw new ExitError(1, 'the connection ended before the command finished; see keelson history');
  process.exitCode = exit;
}

function signalNumber(signal: string | null): number {
  const n = signal ? (({ SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 }) as Record<string, number>)[signal] : undefined;
  return n ?? 1;
}
