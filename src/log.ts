import pino from 'pino';
import { logRedaction } from './source/redact.js';

/** JSON logs with constant messages and lower-case keys: `log.info({ env, app }, 'sync started')`. */
export type Logger = pino.Logger;

/** `json`: one JSON object per line (machines, files, journald); `pretty`: readable lines for a terminal. */
export type LogFormat = 'json' | 'pretty';

export interface LoggerOptions {
  level?: string;
  name?: string;
  /** Default: `pretty` when stdout is a terminal, else `json`. */
  format?: LogFormat;
  /** Where lines go (default stdout); tests pass their own. */
  out?: { write(line: string): unknown; isTTY?: boolean };
}

export function parseLogFormat(value: string | undefined): LogFormat | undefined {
  if (value === undefined || value === '') return undefined;
  if (value === 'json' || value === 'pretty') return value;
  throw new Error(`--log-format must be json or pretty, got ${value}`);
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const out = opts.out ?? process.stdout;
  const format = opts.format ?? (out.isTTY ? 'pretty' : 'json');
  const options: pino.LoggerOptions = {
    level: opts.level ?? process.env.KEELSON_LOG_LEVEL ?? 'info',
    base: { name: opts.name ?? 'keelson' },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Credentials never reach a log line: URL userinfo redacted, secret fields censored.
    ...logRedaction(),
  };
  if (format === 'pretty') return pino(options, { write: (line: string) => out.write(prettyLine(line, out.isTTY === true)) });
  if (opts.out) return pino(options, { write: (line: string) => out.write(line) });
  return pino(options);
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

const levels: Record<number, { name: string; color: string }> = {
  10: { name: 'TRACE', color: '90' },
  20: { name: 'DEBUG', color: '36' },
  30: { name: 'INFO ', color: '32' },
  40: { name: 'WARN ', color: '33' },
  50: { name: 'ERROR', color: '31' },
  60: { name: 'FATAL', color: '35' },
};

/**
 * One pino JSON line as `12:03:04.567 INFO  message key=value …` (the local time of day; the date is in the JSON
 * form). A small formatter rather than pino-pretty: one screen of code instead of a dependency tree.
 */
export function prettyLine(json: string, color: boolean): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const { level, time, msg, name: _name, pid: _pid, hostname: _host, ...rest } = o;
  const lv = levels[level as number] ?? { name: String(level).padEnd(5), color: '0' };
  const t = typeof time === 'string' || typeof time === 'number' ? new Date(time) : new Date();
  const clock = `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}.${String(t.getMilliseconds()).padStart(3, '0')}`;
  const fields = Object.entries(rest)
    .map(([k, v]) => `${k}=${fieldText(v)}`)
    .join(' ');
  const head = color ? `\x1b[90m${clock}\x1b[0m \x1b[${lv.color}m${lv.name}\x1b[0m` : `${clock} ${lv.name}`;
  const key = fields && color ? `\x1b[90m${fields}\x1b[0m` : fields;
  return `${head} ${typeof msg === 'string' ? msg : ''}${key ? ` ${key}` : ''}\n`;
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

function fieldText(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  if (v !== null && typeof v === 'object' && 'message' in v && 'type' in v) {
    const e = v as { message: unknown; stack?: unknown };
    return JSON.stringify(String(e.message));
  }
  return JSON.stringify(v);
}
