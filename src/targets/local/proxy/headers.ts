/**
 * Header rewriting on the hot path. Works on Node's raw header arrays (`[name, value, name, value, ...]`)
 * to keep duplicates and case, and lower-cases a name only when its length matches a header we act on.
 */

// Hop-by-hop headers (RFC 9110 7.6.1): never forwarded either way.
const hopByHop = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade'];
// Plus, on requests, the ones the proxy sets itself or has already handled.
// Client-sent forwarding headers are never passed on as they came: the proxy sets its own (see `ForwardedFor`).
const requestDropped = new Set([
  ...hopByHop,
  'expect' /* Node has already answered `100-continue` */,
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-real-ip',
  'forwarded',
]);
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

/**
 * Which previous hops may speak for the client: when the connecting peer is trusted (another proxy of the operator),
 * the `X-Forwarded-For` it sent is kept and the peer appended; otherwise the header is replaced by the peer alone.
 */
export type TrustPeer = (address: string) => boolean;

export const trustNone: TrustPeer = () => false;

/** `::ffff:127.0.0.1` → `127.0.0.1`, so IPv4 clients of a dual-stack socket compare as IPv4. */
export function plainAddress(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

export interface RequestHeaders {
  headers: string[];
  /** Whether a body follows the headers (content-length > 0 or a transfer-encoding). */
  hasBody: boolean;
}

/**
 * Headers to send upstream: hop-by-hop headers removed, `X-Forwarded-For/Proto/Host` and `X-Real-IP` set by the
 * proxy, a client's `Forwarded` dropped, Host kept. With `upgrade`, `Connection: upgrade` and `Upgrade` are passed on.
 */
export function upstreamRequestHeaders(
  raw: string[],
  remoteAddress: string | undefined,
  proto: string,
  upgrade: boolean,
  trust: TrustPeer = trustNone,
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
  const peer = remoteAddress === undefined ? 'unknown' : plainAddress(remoteAddress);
  // Only a trusted peer's list is kept; the real client is then the last address it names.
  const chain = forwardedFor !== undefined && trust(peer) ? forwardedFor : undefined;
  const realIp = chain === undefined ? peer : lastAddress(chain) ?? peer;
  out.push('X-Forwarded-For', chain === undefined ? peer : `${chain}, ${peer}`);
  out.push('X-Real-IP', realIp);
  out.push('X-Forwarded-Proto', proto);
  if (host !== undefined) out.push('X-Forwarded-Host', host);
  // Node re-frames the body it streams; say so, or it would send a body without framing for GET.
  if (chunked) out.push('Transfer-Encoding', 'chunked');
  if (upgrade && upgradeValue !== undefined) out.push('Connection', 'upgrade', 'Upgrade', upgradeValue);
  return { headers: out, hasBody };
}

function lastAddress(list: string): string | undefined {
  const parts = list.split(',');
  const last = parts[parts.length - 1].trim();
  return last === '' ? undefined : last;
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
