import { closeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errorMessage } from '../../core/errors.js';
import type { EventBus } from '../../core/events.js';
import type { Logger } from '../../log.js';
import { openLogFd } from './logs.js';
import { spawnDetached } from './process.js';
import { ProxyClient } from './proxy/client.js';
import type { CertificateSpec, RouteTable as ProxyTable, WebPorts } from './proxy/protocol.js';
import type { RouteSink, RouteTable } from './supervisor.js';

export interface ProxyManagerOptions {
  stateDir: string;
  log: Logger;
  bus: EventBus;
  /** Address the proxy's public ports bind to (default 127.0.0.1). */
  listenHost?: string;
  /** Shared ports of apps with `hosts` (default 80 and 443). */
  web?: WebPorts;
  /** Peer addresses whose X-Forwarded-For the proxy keeps (other proxies of the operator); default none. */
  trustedProxies?: string[];
}

/** What the certificate manager adds to every table: certificates to serve and ACME HTTP-01 answers. */
export interface TlsSource {
  proxyCertificates(): CertificateSpec[];
  challenges(): Record<string, string>;
  alpnChallenges(): Record<string, { cert: string; key: string }>;
}

export const defaultWebPorts: WebPorts = { http: 80, https: 443 };

const binPath = fileURLToPath(new URL('../../../bin/keelson', import.meta.url));

/**
 * Starts or adopts the proxy process (`keelson proxy`) and keeps its routing table equal to the supervisor's.
 * The proxy outlives the engine, so an engine restart drops no connection.
 */
export class ProxyManager implements RouteSink {
  readonly socketPath: string;
  private readonly client: ProxyClient;
  private last?: RouteTable;
  private starting?: Promise<void>;
  private watchTimer?: NodeJS.Timeout;
  private restartListeners: (() => void)[] = [];
  private closed = false;
  tls?: TlsSource;
  private sending: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: ProxyManagerOptions) {
    this.socketPath = join(o.stateDir, 'proxy.sock');
    this.client = new ProxyClient(this.socketPath);
  }

  /** The supervisor's routes plus web ports, trusted proxies, certificates and challenges. */
  private full(table: RouteTable): ProxyTable {
    const challenges = this.tls?.challenges() ?? {};
    const certificates = this.tls?.proxyCertificates() ?? [];
    const alpnChallenges = this.tls?.alpnChallenges() ?? {};
    return {
      ...table,
      web: this.o.web ?? defaultWebPorts,
      ...(this.o.trustedProxies?.length ? { trustedProxies: this.o.trustedProxies } : {}),
      ...(certificates.length ? { certificates } : {}),
      ...(Object.keys(challenges).length ? { challenges } : {}),
      ...(Object.keys(alpnChallenges).length ? { alpnChallenges } : {}),
    };
  }

  /** Sends the last table again with the current certificates and challenges (starting the proxy if needed). */
  async refresh(): Promise<void> {
    await this.ensure();
    await this.put();
  }

  /**
   * PUTs one at a time, each built when it is sent: the supervisor's routes and the certificate manager's challenges
   * change independently, and an older table arriving last would take back a newer challenge answer.
   */
  private put(): Promise<void> {
    const run = this.sending.then(async () => {
      await this.client.putRoutes(this.full(this.last ?? { routes: [] }));
    });
    this.sending = run.catch(() => undefined);
    return run;
  }

  onRestart(fn: () => void): void {
    this.restartListeners.push(fn);
  }

  async publish(table: RouteTable): Promise<void> {
    this.last = table;
    if (table.routes.length === 0 && !this.watchTimer) return;
    await this.ensure();
    await this.put();
  }

  async drain(backendIds: string[], timeoutMs: number): Promise<void> {
    if (!this.watchTimer) return;
    await this.client.drain(backendIds, timeoutMs);
  }

  close(): void {
    this.closed = true;
    if (this.watchTimer) clearInterval(this.watchTimer);
  }

  /** Stops the proxy process itself (`keelson down`). */
  async stop(): Promise<void> {
    this.close();
    const h = await this.client.health().catch(() => undefined);
    if (h) {
      try {
        process.kill(h.pid, 'SIGTERM');
      } catch {
        /* gone */
      }
    }
  }

  async routes() {
    return this.client.getRoutes();
  }

  async stats() {
    return this.client.stats();
  }

  private ensure(): Promise<void> {
    this.starting ??= this.adoptOrSpawn().finally(() => (this.starting = undefined));
    return this.starting;
  }

  private async adoptOrSpawn(): Promise<void> {
    const h = await this.client.health().catch(() => undefined);
    if (!h) {
      const fd = openLogFd(join(this.o.stateDir, 'logs', 'proxy.log'));
      try {
        const { pid } = await spawnDetached({
          command: [process.execPath, binPath, 'proxy', '--socket', this.socketPath, ...(this.o.listenHost ? ['--listen-host', this.o.listenHost] : [])],
          cwd: this.o.stateDir,
          env: { PATH: process.env.PATH ?? '/usr/bin:/bin', KEELSON_LOG_LEVEL: process.env.KEELSON_LOG_LEVEL ?? 'info' },
          logFd: fd,
        });
        this.o.log.info({ pid }, 'proxy started');
      } finally {
        closeSync(fd);
      }
      await this.waitHealthy(10_000);
    } else if (!this.watchTimer) {
      this.o.log.info({ pid: h.pid }, 'proxy adopted');
    }
    if (!this.watchTimer && !this.closed) {
      this.watchTimer = setInterval(() => void this.check(), 500);
      this.watchTimer.unref();
    }
  }

  private async waitHealthy(timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      if (await this.client.health().catch(() => undefined)) return;
      if (Date.now() > until) throw new Error(`proxy did not answer on ${this.socketPath}; see ${join(this.o.stateDir, 'logs', 'proxy.log')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** The proxy is part of the live state: if it is gone, start it again and hand it the table. */
  private async check(): Promise<void> {
    if (this.starting || this.closed) return;
    if (await this.client.health().catch(() => undefined)) return;
    this.o.bus.publish({ type: 'drift.detected', env: '', app: 'proxy', kind: 'proxy-missing', message: 'the proxy process is gone; starting it again' });
    try {
      await this.ensure();
      if (this.last) await this.put();
      for (const fn of this.restartListeners) fn();
    } catch (err) {
      this.o.log.error({ err: errorMessage(err) }, 'proxy restart failed');
    }
  }
}
