import pino from 'pino';
import { logRedaction } from './source/redact.js';

/** JSON logs with constant messages and lower-case keys: `log.info({ env, app }, 'sync started')`. */
export type Logger = pino.Logger;

export function createLogger(opts: { level?: string; name?: string } = {}): Logger {
  return pino({
    level: opts.level ?? process.env.KEELSON_LOG_LEVEL ?? 'info',
    base: { name: opts.name ?? 'keelson' },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Credentials never reach a log line: URL userinfo redacted, secret fields censored.
    ...logRedaction(),
  });
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
