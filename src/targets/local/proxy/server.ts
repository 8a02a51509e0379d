/**
 * The proxy: owns the public ports and the control socket. It runs as its own long-lived process
 * (`keelson proxy`), so the engine can restart without dropping a connection.
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import tls from 'node:tls';
import type { Logger } from '../../../log.js';
import { CertificateStore } from './certs.js';
import { createControlHandler, listenControl } from './control.js';
import { Forwarder } from './forward.js';
import { plainAddress, trustNone } from './headers.js';
import { PortListener, type Edge } from './listeners.js';
import type { CertificateStatus, DrainResult, RouteStatus, RoutesView, RouteTable, StatsView, TableStatus } from './protocol.js';
import { RoutingTable, type Route } from './routes.js';

export interface ProxyOptions {
  /** Unix socket of the control channel, in the state dir. */
  socketPath: string;
  log: Logger;
  /** Address the public ports bind to. */
  listenHost?: string;
  /** Idle time allowed waiting on a replica before answering 504. */
  upstreamTimeoutMs?: number;
  /** How long a closing port (route removed, or shutdown) waits for in-flight requests before cutting them. */
  closeGraceMs?: number;
}

function alpnContexts(answers: Record<string, { cert: string; key: string }>, log: Logger): Map<string, tls.SecureContext> {
  const out = new Map<string, tls.SecureContext>();
  for (const [host, pair] of Object.entries(answers)) {
    try {
      out.set(host.toLowerCase(), tls.createSecureContext({ cert: pair.cert, key: pair.key }));
    } catch (err) {
      log.error({ host, error: (err as Error).message }, 'TLS-ALPN-01 challenge certificate not loaded');
    }
  }
  return out;
}

export function defaultProxyOptions(): Required<Omit<ProxyOptions, 'socketPath' | 'log'>> {
  return { listenHost: '127.0.0.1', upstreamTimeoutMs: 60_000, closeGraceMs: 30_000 };
}

export interface Proxy {
  readonly socketPath: string;
  readonly startedAt: string;
  /** Replaces the routing table (level-based, idempotent) and reports each route's listener. */
  putRoutes(table: RouteTable): Promise<TableStatus>;
  routes(): RoutesView;
  stats(): StatsView;
  /** Resolves when the backends have no request in flight, or when the timeout passes. */
  drain(backendIds: string[], timeoutMs: number): Promise<DrainResult>;
  /** Closes the control socket and every port, letting in-flight requests finish; `force` cuts them. */
  close(opts?: { force?: boolean }): Promise<void>;
}

/**
 * Starts the proxy with an empty routing table and listens on the control socket.
 *
 * @example
 * const proxy = await startProxy({ socketPath: '.keelson/proxy.sock', log });
 * await proxy.putRoutes({ routes: [{ key: 'prod/web', port: 8080, backends: [{ id: 'r1', url: 'http://127.0.0.1:41001', version: '1.2.0' }] }] });
 */
export async function startProxy(opts: ProxyOptions): Promise<Proxy> {
  const proxy = new ProxyServer({ ...defaultProxyOptions(), ...opts });
  await proxy.start();
  return proxy;
}

class ProxyServer implements Proxy {
  readonly startedAt = new Date().toISOString();
  readonly socketPath: string;
  private readonly log: Logger;
  private readonly table = new RoutingTable();
  private readonly listeners = new Map<number, PortListener>();
  private readonly forwarder: Forwarder;
  private readonly control: http.Server;
  private conflicts = new Map<string, string>();
  private readonly edge: Edge = { certs: new CertificateStore(), challenges: new Map(), alpn: new Map(), web: undefined, trust: trustNone };
  private certificates: CertificateStatus[] = [];
  // Table updates run one at a time, in arrival order.
  private updates: Promise<unknown> = Promise.resolve();
  private closing: Promise<void> | undefined;

  constructor(private readonly opts: Required<ProxyOptions>) {
    this.socketPath = opts.socketPath;
    this.log = opts.log;
    this.forwarder = new Forwarder({ upstreamTimeoutMs: opts.upstreamTimeoutMs, log: opts.log });
    const health = () => ({ pid: process.pid, startedAt: this.startedAt });
    this.control = http.createServer(createControlHandler(this, health, opts.log));
  }

  async start(): Promise<void> {
    await listenControl(this.control, this.socketPath);
    this.log.info({ socket: this.socketPath, pid: process.pid }, 'proxy control listening');
  }

  putRoutes(table: RouteTable): Promise<TableStatus> {
    const run = this.updates.then(() => this.applyTable(table));
    this.updates = run.catch(() => undefined);
    return run;
  }

  private async applyTable(table: RouteTable): Promise<TableStatus> {
    if (this.closing) throw new Error('proxy is shutting down; retry when it is back');
    // Certificates first: a route whose host gets its first certificate redirects only once it can be served.
    const certificates = await this.edge.certs.update(table.certificates ?? []);
    for (const c of certificates) {
      const previous = this.certificates.find((p) => p.certFile === c.certFile);
      if (c.error !== undefined) this.log.error({ hosts: c.hosts, file: c.certFile, error: c.error }, 'certificate not loaded');
      else if (previous?.serial !== c.serial) this.log.info({ hosts: c.hosts, notAfter: c.notAfter, serial: c.serial }, 'certificate loaded');
    }
    this.certificates = certificates;
    const web = table.web;
    const trusted = new Set((table.trustedProxies ?? []).map(plainAddress));
    this.edge.web = web;
    this.edge.challenges = new Map(Object.entries(table.challenges ?? {}));
    this.edge.alpn = alpnContexts(table.alpnChallenges ?? {}, this.log);
    this.edge.trust = trusted.size === 0 ? trustNone : (peer) => trusted.has(peer);

    const { ports, conflicts } = this.table.apply(table);
    this.conflicts = conflicts;
    // ACME challenges are answered on the web HTTP port even before a route uses it.
    if (web !== undefined && this.edge.challenges.size > 0 && !ports.has(web.http)) {
      ports.set(web.http, { fallback: undefined, byHost: undefined });
    }
    if (web !== undefined && this.edge.alpn.size > 0 && !ports.has(web.https)) {
      ports.set(web.https, { fallback: undefined, byHost: undefined });
    }

    const binding: Promise<void>[] = [];
    for (const [port, routes] of ports) {
      const secure = web !== undefined && port === web.https;
      let l = this.listeners.get(port);
      if (l && (l.proto === 'https') !== secure) {
        this.retire(port, l);
        l = undefined;
      }
      if (!l) this.listeners.set(port, (l = new PortListener(port, this.opts.listenHost, this.forwarder, this.edge, secure)));
      l.routes = routes;
      if (!l.listening) binding.push(this.bind(l));
    }
    for (const [port, l] of this.listeners) if (!ports.has(port)) this.retire(port, l);
    await Promise.all(binding);
    this.log.debug({ routes: table.routes.length, ports: ports.size }, 'routes applied');
    return { routes: this.table.all().map((r) => this.statusOf(r)), certificates };
  }

  private retire(port: number, l: PortListener): void {
    this.listeners.delete(port);
    void l.close(this.opts.closeGraceMs).then(() => this.log.info({ port }, 'listener closed'));
  }

  private async bind(l: PortListener): Promise<void> {
    await l.listen();
    if (l.listening) this.log.info({ port: l.port, host: l.listenHost }, 'listener opened');
    else this.log.warn({ port: l.port, host: l.listenHost, error: l.error }, 'listener failed');
  }

  private statusOf(r: Route): RouteStatus {
    const at = r.port === undefined ? {} : { port: r.port };
    const conflict = this.conflicts.get(r.key);
    if (conflict !== undefined) return { key: r.key, ...at, listening: false, error: conflict };
    // A route reached by its hosts only listens where the web ports do.
    const ports = r.port !== undefined ? [r.port] : this.edge.web && r.hosts.length > 0 ? [this.edge.web.http, this.edge.web.https] : [];
    let error: string | undefined;
    for (const port of ports) {
      const l = this.listeners.get(port);
      error ??= l?.error ?? (l?.listening ? undefined : `port ${port} is not bound yet`);
    }
    if (ports.length === 0) error = 'the route has neither a port nor hosts on the web ports';
    return { key: r.key, ...at, listening: error === undefined, ...(error === undefined ? {} : { error }) };
  }

  certificateStatus(): CertificateStatus[] {
    return this.certificates;
  }

  routes(): RoutesView {
    return { routes: this.table.view((r) => this.statusOf(r)), certificates: this.certificates };
  }

  stats(): StatsView {
    return { startedAt: this.startedAt, routes: this.table.all().map((r) => r.counters.view(r.key)) };
  }

  drain(backendIds: string[], timeoutMs: number): Promise<DrainResult> {
    return this.table.waitIdle(backendIds, timeoutMs);
  }

  close(opts: { force?: boolean } = {}): Promise<void> {
    const grace = opts.force ? 0 : this.opts.closeGraceMs;
    if (this.closing) {
      if (opts.force) for (const l of this.listeners.values()) void l.close(0);
      return this.closing;
    }
    this.closing = (async () => {
      this.control.close();
      this.control.closeAllConnections();
      await fs.rm(this.socketPath, { force: true });
      await this.updates;
      await Promise.all([...this.listeners.values()].map((l) => l.close(grace)));
      this.forwarder.close();
    })();
    return this.closing;
  }
}
