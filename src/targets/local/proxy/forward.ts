/**
 * The data plane: forwards one client request to a backend of its route, streaming both ways.
 * A connect failure before anything was sent moves on to the next backend, so a dead replica stays invisible.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../../log.js';
import { downstreamResponseHeaders, upstreamRequestHeaders, type TrustPeer } from './headers.js';
import type { Backend, Route } from './routes.js';

export interface ForwarderOptions {
  /** Idle time allowed on an upstream exchange (waiting for headers or body bytes) before a 504. */
  upstreamTimeoutMs: number;
  log: Logger;
}

/** What the forwarder needs to know about the listener a request came in on. */
export interface Ingress {
  /** The listener is shutting down: answer with `Connection: close`. */
  readonly closing: boolean;
  /** Upgraded (WebSocket) sockets, which the HTTP server no longer tracks; destroyed on forced close. */
  readonly tunnels: Set<Duplex>;
  /** What the client spoke: `X-Forwarded-Proto`, and HSTS on https. */
  readonly proto: 'http' | 'https';
  /** Whose `X-Forwarded-For` is kept. */
  readonly trust: TrustPeer;
}

const idempotent = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
// Errors of a reused keep-alive socket that the backend closed; safe to retry when nothing was sent.
const resetCodes = new Set(['ECONNRESET', 'EPIPE']);

function errorCode(err: unknown): string {
  return (err as NodeJS.ErrnoException)?.code ?? 'unknown';
}

function noop(): void {}

export class Forwarder {
  readonly agent = new http.Agent({ keepAlive: true, scheduling: 'lifo' });

  constructor(readonly opts: ForwarderOptions) {}

  handle(route: Route | undefined, ingress: Ingress, req: http.IncomingMessage, res: http.ServerResponse): void {
    if (route === undefined) {
      respondText(res, 404, `no route for host ${req.headers.host ?? '(none)'}\n`, ingress.closing);
      return;
    }
    new Exchange(this, route, ingress, req, res).attempt();
  }

  upgrade(route: Route | undefined, ingress: Ingress, req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', noop);
    if (route === undefined) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    new Tunnel(this, route, ingress, req, socket, head).attempt(null);
  }

  close(): void {
    this.agent.destroy();
  }
}

/**
 * The backend group (version) a request is meant for under a weighted split: the one its sticky cookie names when
 * that group still takes traffic, else the split's next pick. Plain HTTP and upgraded connections alike.
 */
function groupOf(route: Route, req: http.IncomingMessage): { group?: string; sticky?: string } {
  const split = route.split;
  if (split === undefined) return {};
  const fromCookie = split.stickyCookie === undefined ? undefined : readCookie(req.headers.cookie, split.stickyCookie);
  const sticky = fromCookie !== undefined && split.admits(fromCookie) ? fromCookie : undefined;
  return { group: sticky ?? split.next(), sticky };
}

/** One proxied request/response; at most one upstream attempt is live at a time. */
class Exchange {
  private readonly started = performance.now();
  private readonly headers: string[];
  private readonly hasBody: boolean;
  private tried: Backend[] | null = null;
  private servedBy: Backend | undefined;
  /** The backend group this request is meant for (weighted split), and the client's sticky group if valid. */
  private readonly group: string | undefined;
  private readonly stickyGroup: string | undefined;
  private upstream: http.ClientRequest | undefined;
  /** The client left before the response was complete; what follows is not the backend's fault. */
  private clientGone = false;

  constructor(
    private readonly fw: Forwarder,
    private readonly route: Route,
    private readonly ingress: Ingress,
    private readonly req: http.IncomingMessage,
    private readonly res: http.ServerResponse,
  ) {
    const h = upstreamRequestHeaders(req.rawHeaders, req.socket.remoteAddress, ingress.proto, false, ingress.trust);
    this.headers = h.headers;
    this.hasBody = h.hasBody;
    ({ group: this.group, sticky: this.stickyGroup } = groupOf(route, req));
    req.on('error', noop);
    res.once('close', this.onClose);
  }

  private readonly onClose = (): void => {
    // Client went away before the response was complete: stop the upstream exchange too.
    if (!this.res.writableFinished) {
      this.clientGone = true;
      this.upstream?.destroy();
    }
    const seconds = (performance.now() - this.started) / 1000;
    this.route.counters.record(this.servedBy, this.res.statusCode, seconds);
  };

  attempt(): void {
    const { route, req, res } = this;
    const b = route.pick(this.tried, this.group);
    if (b === undefined) {
      if (this.tried === null) this.fail(503, `no ready replicas for ${route.key}\n`);
      else this.fail(502, `all replicas of ${route.key} failed\n`);
      return;
    }
    b.acquire();
    this.servedBy = b;
    let connected = false;
    let bodySent = false;
    let responded = false;
    let failed = false;
    let errored = false;
    let timedOut = false;

    const up = http.request({
      agent: this.fw.agent,
      host: b.hostname,
      port: b.port,
      method: req.method,
      path: req.url,
      headers: this.headers,
    });
    this.upstream = up;
    if (!this.hasBody) up.end();

    const onConnect = (): void => {
      connected = true;
      if (this.hasBody && !bodySent) {
        bodySent = true;
        req.pipe(up);
      }
    };
    up.on('socket', (s) => {
      if ((s as Socket).connecting) s.once('connect', onConnect);
      else onConnect();
    });
    up.setTimeout(this.fw.opts.upstreamTimeoutMs, () => {
      timedOut = true;
      up.destroy();
    });

    up.on('response', (ur) => {
      responded = true;
      const status = ur.statusCode ?? 502;
      if (status >= 500) failed = true;
      if (res.destroyed) {
        ur.resume();
        return;
      }
      const headers = downstreamResponseHeaders(ur.rawHeaders, this.ingress.closing);
      const cookie = route.split?.stickyCookie;
      if (cookie !== undefined && b.group !== undefined && b.group !== this.stickyGroup) {
        headers.push('Set-Cookie', `${cookie}=${b.group}; Path=/; HttpOnly; SameSite=Lax${this.ingress.proto === 'https' ? '; Secure' : ''}`);
      }
      const hsts = route.tls?.hstsMaxAgeSeconds;
      if (hsts !== undefined && this.ingress.proto === 'https') headers.push('Strict-Transport-Security', `max-age=${hsts}`);
      res.writeHead(status, ur.statusMessage, headers);
      ur.pipe(res);
      ur.on('close', () => {
        // Upstream died mid-body: the client must see a broken response, not a short one.
        if (!ur.complete) {
          if (!this.clientGone) failed = true;
          res.destroy();
        }
      });
    });

    up.on('error', (err) => {
      // Only the first error of an attempt counts; later ones are echoes (e.g. the request body still being piped).
      if (errored) return;
      errored = true;
      if (!this.clientGone) failed = true;
      if (res.destroyed || responded) {
        if (!res.writableFinished) res.destroy();
        return;
      }
      const code = errorCode(err);
      const retry =
        !timedOut && (!connected || (!bodySent && resetCodes.has(code) && idempotent.has(req.method ?? '')));
      if (!connected) b.markDown(Date.now());
      this.fw.opts.log.debug({ route: route.key, backend: b.id, code, retry }, 'upstream request failed');
      if (retry) {
        (this.tried ??= []).push(b);
        this.attempt();
      } else if (timedOut) {
        this.fail(504, `replica of ${route.key} did not answer in time\n`);
      } else {
        this.fail(502, `replica of ${route.key} failed\n`);
      }
    });

    up.once('close', () => b.release(failed));
  }

  private fail(status: number, text: string): void {
    const res = this.res;
    // A request body left half-read cannot be skipped on a kept-alive connection: close it.
    if (!res.headersSent) respondText(res, status, text, this.ingress.closing || !this.req.complete);
    else if (!res.writableFinished) res.destroy();
  }
}

/** A WebSocket (or other Upgrade) connection passed through byte for byte once the backend agrees. */
class Tunnel {
  private readonly headers: string[];

  constructor(
    private readonly fw: Forwarder,
    private readonly route: Route,
    private readonly ingress: Ingress,
    private readonly req: http.IncomingMessage,
    private readonly socket: Duplex,
    private readonly head: Buffer,
  ) {
    this.headers = upstreamRequestHeaders(req.rawHeaders, req.socket.remoteAddress, ingress.proto, true, ingress.trust).headers;
    // A WebSocket of a client that a canary's cookie keeps on one version stays on that version too.
    this.group = groupOf(route, req).group;
  }

  private readonly group: string | undefined;

  attempt(tried: Backend[] | null): void {
    const { route, socket } = this;
    const b = route.pick(tried, this.group);
    if (b === undefined) {
      const status = tried === null ? '503 Service Unavailable' : '502 Bad Gateway';
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    b.acquire();
    let failed = false;
    let connected = false;
    let settled = false;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      b.release(failed);
    };
    const up = http.request({
      agent: false,
      host: b.hostname,
      port: b.port,
      method: this.req.method,
      path: this.req.url,
      headers: this.headers,
    });
    up.end();
    up.on('socket', (s) => s.once('connect', () => (connected = true)));
    up.setTimeout(this.fw.opts.upstreamTimeoutMs, () => up.destroy());
    const onSocketClose = (): void => {
      if (!settled) up.destroy();
    };
    socket.once('close', onSocketClose);

    up.on('upgrade', (ur, upSocket, upHead) => {
      settled = true;
      if (socket.destroyed) {
        upSocket.destroy();
        release();
        return;
      }
      upSocket.setTimeout(0);
      let head = `HTTP/1.1 ${ur.statusCode} ${ur.statusMessage}\r\n`;
      for (let i = 0; i < ur.rawHeaders.length; i += 2) head += `${ur.rawHeaders[i]}: ${ur.rawHeaders[i + 1]}\r\n`;
      socket.write(head + '\r\n');
      if (upHead.length > 0) socket.write(upHead);
      if (this.head.length > 0) upSocket.write(this.head);
      upSocket.on('error', noop);
      upSocket.pipe(socket).pipe(upSocket);
      this.ingress.tunnels.add(socket);
      let open = 2;
      const closed = (): void => {
        socket.destroy();
        upSocket.destroy();
        if (--open === 0) {
          this.ingress.tunnels.delete(socket);
          release();
        }
      };
      socket.once('close', closed);
      upSocket.once('close', closed);
    });

    // The backend declined the upgrade: relay its answer and close.
    up.on('response', (ur) => {
      settled = true;
      if ((ur.statusCode ?? 502) >= 500) failed = true;
      let head = `HTTP/1.1 ${ur.statusCode} ${ur.statusMessage}\r\n`;
      const h = downstreamResponseHeaders(ur.rawHeaders, true);
      for (let i = 0; i < h.length; i += 2) {
        if (h[i].toLowerCase() !== 'content-length') head += `${h[i]}: ${h[i + 1]}\r\n`;
      }
      socket.write(head + '\r\n');
      ur.pipe(socket);
      ur.once('close', release);
    });

    up.on('error', (err) => {
      failed = true;
      release();
      socket.off('close', onSocketClose);
      if (settled || socket.destroyed) return;
      if (!connected) {
        b.markDown(Date.now());
        this.fw.opts.log.debug({ route: route.key, backend: b.id, code: errorCode(err) }, 'upstream upgrade failed');
        this.attempt([...(tried ?? []), b]);
        return;
      }
      socket.end('HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    });
  }
}

/** The value of cookie `name` in a Cookie header, if present. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function respondText(res: http.ServerResponse, status: number, text: string, close: boolean): void {
  res.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    ...(close ? { Connection: 'close' } : {}),
  });
  res.end(text);
}
