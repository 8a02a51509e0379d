/** `keelson proxy --socket <path>`: runs the proxy until SIGTERM or SIGINT. */
import { parseArgs } from 'node:util';
import { ExitError, errorMessage } from '../../../core/errors.js';
import { createLogger, type Logger } from '../../../log.js';
import { defaultProxyOptions, startProxy, type ProxyOptions } from './server.js';

export interface ProxyArgs {
  socketPath: string;
  listenHost: string;
  upstreamTimeoutMs: number;
  closeGraceMs: number;
}

const usage = 'usage: keelson proxy --socket <path> [--listen-host 127.0.0.1] [--upstream-timeout-ms 60000] [--close-grace-ms 30000]';

export function parseProxyArgs(argv: string[]): ProxyArgs {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        socket: { type: 'string' },
        'listen-host': { type: 'string' },
        'upstream-timeout-ms': { type: 'string' },
        'close-grace-ms': { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new ExitError(2, `${errorMessage(err)}\n${usage}`);
  }
  if (!values.socket) throw new ExitError(2, `--socket is required\n${usage}`);
  const defaults = defaultProxyOptions();
  return {
    socketPath: values.socket,
    listenHost: values['listen-host'] ?? defaults.listenHost,
    upstreamTimeoutMs: positiveInt(values['upstream-timeout-ms'], '--upstream-timeout-ms', defaults.upstreamTimeoutMs),
    closeGraceMs: positiveInt(values['close-grace-ms'], '--close-grace-ms', defaults.closeGraceMs),
  };
}

function positiveInt(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new ExitError(2, `${flag} must be a whole number of milliseconds, got ${value}`);
  return n;
}

/**
 * Entry of `keelson proxy`. Logs JSON to stdout and nothing else; resolves once a SIGTERM/SIGINT
 * shutdown has finished (in-flight requests get `--close-grace-ms`; a second signal cuts them).
 */
export async function runProxyMain(argv: string[], log: Logger = createLogger({ name: 'keelson-proxy' })): Promise<void> {
  const args = parseProxyArgs(argv);
  const opts: ProxyOptions = { ...args, log };
  const proxy = await startProxy(opts).catch((err: unknown) => {
    throw new ExitError(1, `proxy could not start: ${errorMessage(err)}`);
  });
  log.info({ socket: args.socketPath, pid: process.pid, listenhost: args.listenHost }, 'proxy started');

  let signals = 0;
  let onSignal: (signal: NodeJS.Signals) => void = () => {};
  await new Promise<void>((resolve) => {
    onSignal = (signal) => {
      signals++;
      if (signals === 1) {
        log.info({ signal }, 'proxy stopping');
        proxy.close().then(resolve, (err: unknown) => {
          log.error({ err }, 'proxy stop failed');
          resolve();
        });
      } else {
        log.warn({ signal }, 'proxy stopping now, cutting in-flight requests');
        void proxy.close({ force: true });
      }
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  log.info('proxy stopped');
}
