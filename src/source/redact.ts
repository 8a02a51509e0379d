/**
 * Credentials out of everything Keelson logs or answers. A repository URL may carry a token
 * (`https://user:token@host/org/ops.git`); every URL in a text loses its userinfo. The one helper the source, the API,
 * hooks and the logger use.
 */
import type { LoggerOptions } from 'pino';

const MASK = '***';

/** `text` with the userinfo of every `scheme://user:pass@` URL in it replaced by `***`. */
export function redactCredentials(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/@\s'"]+@/gi, `$1${MASK}@`);
}

/** A URL without credentials or query (either may hold a secret): what a hook's or notification's URL shows as. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}${u.search ? '?…' : ''}`;
  } catch {
    return '(invalid URL)';
  }
}

/** Log fields whose value is a secret whatever it looks like: censored as `***`. */
export const secretLogFields = [
  'token',
  'password',
  'secret',
  'webhookSecret',
  'authorization',
  'cookie',
  'identity',
  'ageKey',
  'headers.authorization',
  'headers.cookie',
  'headers["x-gitlab-token"]',
  'headers["x-hub-signature-256"]',
];

function redactStrings(obj: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(obj)) {
    if (typeof v !== 'string') continue;
    const r = redactCredentials(v);
    if (r !== v) (out ??= { ...obj })[k] = r;
  }
  return out ?? obj;
}

/** Log fields that hold a URL (also in a child logger's bindings): logged with the userinfo redacted. */
export const urlLogFields = ['repo', 'url', 'remote'];

const topLevel = (fields: string[]) => fields.filter((f) => !f.includes('.'));

/**
 * pino options that keep credentials out of every log line: secret fields censored, URL fields (in bindings too)
 * and every other string field of a log call with URL userinfo redacted.
 */
export function logRedaction(): Pick<LoggerOptions, 'redact' | 'formatters'> {
  const urls = new Set([...urlLogFields, ...urlLogFields.map((f) => `*.${f}`)]);
  return {
    redact: {
      paths: [...secretLogFields, ...topLevel(secretLogFields).map((f) => `*.${f}`), ...urls],
      censor: (value: unknown, path: string[]) => (urls.has(path.length > 1 ? `*.${path[path.length - 1]}` : path[0]) && typeof value === 'string' ? redactCredentials(value) : MASK),
    },
    formatters: { log: redactStrings },
  };
}
