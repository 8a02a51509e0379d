/**
 * Header rewriting on the hot path. Works on Node's raw header arrays (`[name, value, name, value, ...]`)
 * to keep duplicates and case, and lower-cases a name only when its length matches a header we act on.
 */

// Hop-by-hop headers (RFC 9110 7.6.1): never forwarded either way.
const hopByHop = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade'];
// Plus, on requests, the ones the proxy sets itself or has already handled.
const requestDropped = new Set([...hopByHop, 'expect' /* Node has already answered `100-continue` */, 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host']);
const responseDropped = new Set(hopByHop);
const lengths = new Set([...requestDropped, 'host', 'content-length'].map((n) => n.length));

/** Header names listed in a `Connection` value, other than the usual ones; null when there are none. */
function connectionTokens(raw: string[]): Set<string> | null {
  let extra: Set<string> | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length !== 10 || raw[i].toLowerCase() !== 'connection') continue;
    for (const t of raw[i + 1].split(',')) {
      const name = t.trim().toLowerCase();
      if (name === '' || name === 'keep-alive' || name === 'close' || name === 'upgrade') continue;
      (extra ??= new Set()).add(name);
    }
  }
  return extra;
}

export interface RequestHeaders {
  headers: string[];
  /** Whether a body follows the headers (content-length > 0 or a transfer-encoding). */
  hasBody: boolean;
}

/**
 * Headers to send upstream: hop-by-hop headers removed, `X-Forwarded-*` set, Host kept.
 * With `upgrade`, `Connection: upgrade` and `Upgrade` are passed on.
 */
export function upstreamRequestHeaders(
  raw: string[],
  remoteAddress: string | undefined,
  proto: string,
  upgrade: boolean,
): RequestHeaders {
  const extra = connectionTokens(raw);
  const out: string[] = [];
  let forwardedFor: string | undefined;
  let host: string | undefined;
  let upgradeValue: string | undefined;
  let hasBody = false;
  let chunked = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    const value = raw[i + 1];
    if (lengths.has(name.length) || extra !== null) {
      const lower = name.toLowerCase();
      if (lower === 'host') host = value;
      else if (lower === 'content-length') hasBody ||= value !== '0';
      else if (lower === 'transfer-encoding') hasBody = chunked = true;
      else if (lower === 'x-forwarded-for') forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
      else if (lower === 'upgrade') upgradeValue = value;
      if (requestDropped.has(lower) || (extra !== null && extra.has(lower))) continue;
    }
    out.push(name, value);
  }
  const client = remoteAddress ?? 'unknown';
  out.push('X-Forwarded-For', forwardedFor === undefined ? client : `${forwardedFor}, ${client}`);
  out.push('X-Forwarded-Proto', proto);
  if (host !== undefined) out.push('X-Forwarded-Host', host);
  // Node re-frames the body it streams; say so, or it would send a body without framing for GET.
  if (chunked) out.push('Transfer-Encoding', 'chunked');
  if (upgrade && upgradeValue !== undefined) out.push('Connection', 'upgrade', 'Upgrade', upgradeValue);
  return { headers: out, hasBody };
}

/** Headers to send back to the client: hop-by-hop headers removed; `Connection: close` when closing. */
export function downstreamResponseHeaders(raw: string[], close: boolean): string[] {
  const extra = connectionTokens(raw);
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    if (lengths.has(name.length) || extra !== null) {
      const lower = name.toLowerCase();
      if (responseDropped.has(lower) || (extra !== null && extra.has(lower))) continue;
    }
    out.push(name, raw[i + 1]);
  }
  if (close) out.push('Connection', 'close');
  return out;
}
