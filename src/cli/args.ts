import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ExitError } from '../core/errors.js';

/** Parses `10s`, `500ms`, `2m`, `1h` (a bare number is seconds). */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new ExitError(2, `invalid duration "${text}": use e.g. 500ms, 10s, 2m, 1h`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return Math.round(n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit]!);
}

/** util.parseArgs with errors turned into a usage exit. */
export function parse<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (err) {
    throw new ExitError(2, `${(err as Error).message}\nRun \`keelson help\` for usage.`);
  }
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** Splits `host:port` (`[::1]:7070` too). */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text);
  if (!m) throw new ExitError(2, `invalid --listen "${text}": use host:port, e.g. 127.0.0.1:7070`);
  return { host: m[1] ?? m[2], port: Number(m[3]) };
}
