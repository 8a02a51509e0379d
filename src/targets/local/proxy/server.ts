/**
 * The proxy: owns the public ports and the control socket. It runs as its own long-lived process
 * (`keelson proxy`), so the engine can restart without dropping a connection.
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import type { Logger } from '../../../log.js';
import { createControlHandler, listenControl } from './control.js';
import { Forwarder } from './forward.js';
import { PortListener } from './listeners.js';
import type { DrainResult, RouteStatus, RoutesView, RouteTable, StatsView, TableStatus } from './protocol.js';
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
    const { ports, conflicts } = this.table.apply(table);
    this.conflicts = conflicts;

    const binding: Promise<void>[] = [];
    for (const [port, routes] of ports) {
      let l = this.listeners.get(port);
      if (!l) this.listeners.set(port, (l = new PortListener(port, this.opts.listenHost, this.forwarder)));
      l.routes = routes;
      if (!l.listening) binding.push(this.bind(l));
    }
    for (const [port, l] of this.listeners) {
      if (ports.has(port)) continue;
      this.listeners.delete(port);
      void l.close(this.opts.closeGraceMs).then(() => this.log.info({ port }, 'listener closed'));
    }
    await Promise.all(binding);
    this.log.debug({ routes: table.routes.length, ports: ports.size }, 'routes applied');
    return { routes: this.table.all().map((r) => this.statusOf(r)) };
  }

  private async bind(l: PortListener): Promise<void> {
    await l.listen();
    if (l.listening) this.log.info({ port: l.port, host: l.listenHost }, 'listener opened');
    else this.log.warn({ port: l.port, host: l.listenHost, error: l.error }, 'listener failed');
  }

  private statusOf(r: Route): RouteStatus {
    const conflict = this.conflicts.get(r.key);
    if (conflict !== undefined) return { key: r.key, port: r.port, listening: false, error: conflict };
    const l = this.listeners.get(r.port);
    const listening = l?.listening ?? false;
    const error = l?.error ?? (listening ? undefined : `port ${r.port} is not bound yet`);
    return { key: r.key, port: r.port, listening, ...(error === undefined ? {} : { error }) };
  }

  routes(): RoutesView {
    return { routes: this.table.view((r) => this.statusOf(r)) };
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
