/**
 * HTTP for chart sources (chart repositories and OCI registries): one GET with a deadline, a size limit and safe
 * redirects, and one classification of failures shared with the local target's artifact downloads: the network,
 * 408, 429 and 5xx are TransientError (retried like an unreachable target), other answers TerminalError.
 */
import { TerminalError, TransientError, errorMessage } from '../../core/errors.js';
import { redactUrl } from '../local/artifact.js';

export interface HttpGetOptions {
  /** What is fetched, for messages: `chart repository https://… index`. */
  what: string;
  signal?: AbortSignal;
  headers?: Record<string, string>;
  /** Largest body accepted. */
  maxBytes: number;
  /** Whole-request deadline including redirects. */
  timeoutMs: number;
  maxRedirects?: number;
}

export interface HttpAnswer {
  status: number;
  headers: Headers;
  body: Buffer;
  /** The URL that answered, after redirects. */
  url: URL;
}

/** A URL for messages: without credentials or query (see redactUrl), without a trailing slash. */
export function displayUrl(url: string | URL): string {
  return redactUrl(url).replace(/\/$/, '');
}

/** 127.0.0.0/8, ::1 and localhost: the only hosts spoken to over plain HTTP. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/**
 * Parses a chart source URL from the ops repository. Refuses credentials (they would be stored in git) and plain
 * http to anything but loopback.
 */
export function parseRemoteUrl(raw: string, what: string, protocols: readonly string[] = ['https:', 'http:']): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new TerminalError(`${what} ${JSON.stringify(displayUrl(raw))} is not a valid URL`);
  }
  if (!protocols.includes(url.protocol)) {
    throw new TerminalError(`${what} ${displayUrl(url)}: the URL must start with ${protocols.map((p) => `${p}//`).join(' or ')}`);
  }
  if (url.username || url.password) {
    throw new TerminalError(
      `${what} ${displayUrl(url)}: credentials in the URL are refused (they would be stored in git); ` +
        'Keelson reads public chart sources only',
    );
  }
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    throw new TerminalError(`${what} ${displayUrl(url)}: plain http is only used for loopback hosts; use https://`);
  }
  return url;
}

/** The error for an HTTP answer that is not a success: 408, 429 and 5xx may pass, the rest will not by retrying. */
export function statusError(what: string, status: number, detail = ''): Error {
  const msg = `${what}: HTTP ${status}${detail ? `; ${detail}` : ''}`;
  if (status === 408 || status === 429 || status >= 500) return new TransientError(msg);
  if (status === 401 || status === 403) {
    return new TerminalError(`${msg}; the server wants credentials, and Keelson fetches charts anonymously for now`);
  }
  return new TerminalError(msg);
}

/**
 * GETs `start`, following up to `maxRedirects` redirects (never from https to http, never plain http off loopback;
 * an Authorization header is dropped when a redirect leaves the origin). Any HTTP status is returned to the caller;
 * failing to get an answer at all is a TransientError.
 */
export async function httpGet(start: URL, o: HttpGetOptions): Promise<HttpAnswer> {
  const timeout = AbortSignal.timeout(o.timeoutMs);
  const signal = o.signal ? AbortSignal.any([o.signal, timeout]) : timeout;
  const maxRedirects = o.maxRedirects ?? 5;
  let url = start;
  try {
    for (let redirects = 0; ; redirects++) {
      const headers: Record<string, string> = { 'user-agent': 'keelson', ...o.headers };
      if (url.origin !== start.origin) delete headers.authorization;
      let res: Response;
      try {
        res = await fetch(url, { headers, redirect: 'manual', signal });
      } catch (err) {
        if (signal.aborted) throw err;
        throw new TransientError(`${o.what}: ${displayUrl(url)} unreachable: ${networkReason(err)}`, { cause: err });
      }
      const location = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && location) {
        await res.body?.cancel();
        if (redirects >= maxRedirects) throw new TerminalError(`${o.what}: more than ${maxRedirects} redirects`);
        const next = new URL(location, url);
        if (next.protocol !== 'http:' && next.protocol !== 'https:') {
          throw new TerminalError(`${o.what}: redirected to unsupported protocol ${next.protocol}`);
        }
        if (url.protocol === 'https:' && next.protocol === 'http:') {
          throw new TerminalError(`${o.what}: redirected from https to http; refusing to downgrade`);
        }
        if (next.protocol === 'http:' && !isLoopbackHost(next.hostname)) {
          throw new TerminalError(`${o.what}: redirected to plain http on ${next.host}; refused`);
        }
        url = next;
        continue;
      }
      return { status: res.status, headers: res.headers, body: await readBody(res, url, o, signal), url };
    }
  } catch (err) {
    if (timeout.aborted && !o.signal?.aborted) {
      throw new TransientError(`${o.what}: no complete answer within ${o.timeoutMs} ms`, { cause: err });
    }
    throw err;
  }
}

async function readBody(res: Response, url: URL, o: HttpGetOptions, signal: AbortSignal): Promise<Buffer> {
  const length = Number(res.headers.get('content-length'));
  if (res.status >= 200 && res.status < 300 && Number.isFinite(length) && length > o.maxBytes) {
    await res.body?.cancel();
    throw new TerminalError(`${o.what}: ${length} bytes, over the ${o.maxBytes} byte limit`);
  }
  if (!res.body) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res.body) {
      size += chunk.length;
      if (size > o.maxBytes) {
        await res.body.cancel().catch(() => undefined);
        throw new TerminalError(`${o.what}: over the ${o.maxBytes} byte limit`);
      }
      chunks.push(Buffer.from(chunk));
    }
  } catch (err) {
    if (err instanceof TerminalError || signal.aborted) throw err;
    throw new TransientError(`${o.what}: ${displayUrl(url)} broke off: ${networkReason(err)}`, { cause: err });
  }
  return Buffer.concat(chunks);
}

/** `connect ECONNREFUSED 127.0.0.1:1234` rather than undici's bare "fetch failed". */
function networkReason(err: unknown): string {
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof Error) {
    const code = (cause as { code?: string }).code;
    return code && !cause.message.includes(code) ? `${code} ${cause.message}` : cause.message;
  }
  return errorMessage(err);
}
