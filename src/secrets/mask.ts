/**
 * Masking of secret values in everything Keelson outputs, as CI systems mask secrets: every decrypted value the
 * engine knows is replaced by `***` in events (and so in history, the event stream, notifications), sync messages,
 * failure messages and the log lines the API serves. One mask per engine, fed when the engine decrypts a revision's
 * secrets (see `digestSecrets`); applied where events are published and where log tails are read.
 *
 * - Values shorter than 4 characters are not masked (they would mangle ordinary output; don't use such secrets).
 * - A multi-line value (a secret file) is masked line by line, so any line of it that shows up alone is masked.
 * - The base64 form of each value and line is masked too (how secrets show up in Kubernetes objects and headers).
 */
export const MASKED = '***';
export const MIN_SECRET_LENGTH = 4;

export class SecretMask {
  private readonly byEnv = new Map<string, Set<string>>();
  /** The compiled mask; undefined when values were added since. */
  private pattern?: RegExp | null;

  /** Records a decrypted value of an app of `env` (every form of it that output may carry). */
  add(env: string, value: string): void {
    let set = this.byEnv.get(env);
    if (!set) this.byEnv.set(env, (set = new Set()));
    const before = set.size;
    for (const form of formsOf(value)) set.add(form);
    if (set.size !== before) this.pattern = undefined;
  }

  /** How many strings are masked (for the start-up log; never the strings). */
  get size(): number {
    return this.all().size;
  }

  /**
   * `text` with every known secret value replaced by `***`. A value of any environment is masked everywhere: a
   * secret does not become public because it shows up in another environment's output.
   */
  mask(text: string): string {
    const re = this.regex();
    if (!re || text.length < MIN_SECRET_LENGTH) return text;
    re.lastIndex = 0;
    return text.replace(re, MASKED);
  }

  /** A copy of `value` with every string in it (object values and array items, deeply) masked. */
  maskDeep<T>(value: T): T {
    if (!this.regex()) return value;
    return walk(value, (s) => this.mask(s)) as T;
  }

  private all(): Set<string> {
    const out = new Set<string>();
    for (const set of this.byEnv.values()) for (const v of set) out.add(v);
    return out;
  }

  private regex(): RegExp | null {
    if (this.pattern !== undefined) return this.pattern;
    const values = [...this.all()].sort((a, b) => b.length - a.length);
    this.pattern = values.length ? new RegExp(values.map(escapeRegExp).join('|'), 'g') : null;
    return this.pattern;
  }
}

/** The strings that stand for `value` in output: itself, its lines, and the base64 of each (padding dropped). */
export function formsOf(value: string): string[] {
  const plain = new Set<string>();
  if (value.length >= MIN_SECRET_LENGTH) plain.add(value);
  const lines = value.split(/\r?\n/);
  if (lines.length > 1) for (const line of lines) if (line.trim().length >= MIN_SECRET_LENGTH) plain.add(line.replace(/\r$/, ''));
  const out = new Set(plain);
  for (const p of plain) {
    const b64 = Buffer.from(p, 'utf8').toString('base64').replace(/=+$/, '');
    if (b64.length >= MIN_SECRET_LENGTH) out.add(b64);
  }
  return [...out];
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function walk(value: unknown, fn: (s: string) => string): unknown {
  if (typeof value === 'string') return fn(value);
  if (Array.isArray(value)) return value.map((v) => walk(v, fn));
  if (value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v, fn)]));
  }
  return value;
}
