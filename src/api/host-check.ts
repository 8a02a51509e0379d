/**
 * Against DNS rebinding: a web page on an attacker's name that resolves to 127.0.0.1 would otherwise talk to an API
 * listening on loopback from the victim's browser, with the browser believing it same-origin. The Host header tells
 * the name the browser used: on loopback only `localhost`, `127.0.0.1` and `[::1]` with the listening port (or a
 * name the operator allows) are answered. And a state-changing request whose `Origin` is another site is refused
 * (a form or fetch from a foreign page), whatever the address the API listens on.
 */
import type { MiddlewareHandler } from 'hono';

export interface HostCheckOptions {
  /** The address the API listens on (the check of Host names applies when it is a loopback address). */
  listenHost: string;
  port: number;
  /** Further names (`name` or `name:port`) the API may be reached by, e.g. a reverse proxy's name. */
  allowedHosts?: string[];
  /**
   * The `name:port` this engine advertises to the others (`--advertise-url`): answered too, so that requests forwarded
   * by another engine pass, without turning the check of Host names on (read at each request).
   */
  advertised?: string[];
}

const loopbackNames = ['localhost', '127.0.0.1', '[::1]'];
const safeMethods = new Set(['GET', 'HEAD', 'OPTIONS']);

export function isLoopbackAddress(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\./.test(host);
}

/** `name:port` (lower case, the default port of http written out), or undefined for a malformed value. */
function normalize(hostHeader: string, defaultPort: number): { name: string; port: number } | undefined {
  const m = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/i.exec(hostHeader.trim());
  if (!m) return undefined;
  return { name: m[1].toLowerCase().replace(/\.$/, ''), port: m[2] ? Number(m[2]) : defaultPort };
}

export class HostPolicy {
  private readonly listed: { name: string; port?: number }[];
  private readonly checkHosts: boolean;

  /** `o.port` is read at each request (a server listening on port 0 learns its port after the API is built). */
  constructor(private readonly o: HostCheckOptions) {
    this.checkHosts = isLoopbackAddress(o.listenHost) || (o.allowedHosts?.length ?? 0) > 0;
    this.listed = (o.allowedHosts ?? []).map((h) => {
      const n = normalize(h, 0);
      if (!n) throw new Error(`allowed host "${h}" is not a host name or name:port`);
      return { name: n.name, port: /:\d+$/.test(h) ? n.port : undefined };
    });
  }

  private get allowed(): { name: string; port?: number }[] {
    const self = isLoopbackAddress(this.o.listenHost) ? loopbackNames : [this.o.listenHost.includes(':') ? `[${this.o.listenHost}]` : this.o.listenHost];
    const advertised = (this.o.advertised ?? []).flatMap((h) => {
      const n = normalize(h, 80);
      return n ? [n] : [];
    });
    return [...self.map((name) => ({ name, port: this.o.port })), ...this.listed, ...advertised];
  }

  /** Why a request to this Host is refused, or undefined when it is allowed. */
  checkHost(host: string | undefined): string | undefined {
    if (!this.checkHosts) return undefined;
    const n = host ? normalize(host, 80) : undefined;
    const allowed = this.allowed;
    if (n && allowed.some((a) => a.name === n.name && (a.port === undefined || a.port === n.port))) return undefined;
    return `requests for host "${host ?? ''}" are refused (DNS rebinding protection); the API answers to ${allowed
      .map((a) => (a.port === undefined ? a.name : `${a.name}:${a.port}`))
      .join(', ')}. To reach it by another name, allow it: keelson up --allow-host NAME (or KEELSON_ALLOWED_HOSTS, allowedHosts in keelson.yaml)`;
  }

  /** Why a state-changing request from this Origin is refused, or undefined. `host` is the request's Host. */
  checkOrigin(method: string, origin: string | undefined, host: string | undefined): string | undefined {
    if (safeMethods.has(method) || origin === undefined) return undefined;
    let o: URL | undefined;
    try {
      o = origin === 'null' ? undefined : new URL(origin);
    } catch {
      o = undefined;
    }
    const h = host ? normalize(host, 80) : undefined;
    if (o && (o.protocol === 'http:' || o.protocol === 'https:')) {
      const on = normalize(o.host, o.protocol === 'https:' ? 443 : 80);
      if (on && h && on.name === h.name && on.port === h.port) return undefined; // same origin: the dashboard
      if (on && this.allowed.some((a) => a.name === on.name && (a.port === undefined || a.port === on.port))) return undefined;
    }
    return `a ${method} from origin "${origin}" is refused: only the dashboard's own origin may change things (cross-site request protection)`;
  }
}

/** The middleware: 403 for a foreign Host (on loopback) or a foreign Origin on a state-changing request. */
export function hostCheck(o: HostCheckOptions): MiddlewareHandler {
  const policy = new HostPolicy(o);
  return async (c, next) => {
    const host = c.req.header('host') ?? new URL(c.req.url).host;
    const why = policy.checkHost(host) ?? policy.checkOrigin(c.req.method, c.req.header('origin'), host);
    if (why) return c.json({ error: 'Forbidden', message: why }, 403);
    return next();
  };
}
