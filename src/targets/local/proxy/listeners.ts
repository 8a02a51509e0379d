/** One public port: an HTTP server whose routes are swapped in place by the control plane. */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { errorMessage } from '../../../core/errors.js';
import type { Forwarder, Ingress } from './forward.js';
import { resolveRoute, type PortRoutes } from './routes.js';

export class PortListener implements Ingress {
  routes: PortRoutes = { fallback: undefined, byHost: undefined };
  listening = false;
  error: string | undefined;
  closing = false;
  readonly tunnels = new Set<Duplex>();
  private readonly server: http.Server;
  private closed: Promise<void> | undefined;

  constructor(
    readonly port: number,
    readonly listenHost: string,
    fw: Forwarder,
  ) {
    this.server = http.createServer((req, res) => {
      fw.handle(resolveRoute(this.routes, req.headers.host), this, req, res);
    });
    this.server.on('upgrade', (req, socket, head) => {
      fw.upgrade(resolveRoute(this.routes, req.headers.host), this, req, socket, head);
    });
  }

  /** Binds the port; a failure is kept in `error` (not thrown) so the next table update can retry. */
  listen(): Promise<void> {
    return new Promise((resolve) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        this.listening = false;
        this.error = describeListenError(err, this.port, this.listenHost);
        resolve();
      };
      this.server.once('error', onError);
      this.server.listen({ port: this.port, host: this.listenHost }, () => {
        this.server.off('error', onError);
        this.listening = true;
        this.error = undefined;
        resolve();
      });
    });
  }

  /**
   * Stops accepting connections and lets in-flight requests finish; after `graceMs` the remaining
   * connections are cut. Idempotent; `graceMs: 0` on a second call forces.
   */
  close(graceMs: number): Promise<void> {
    this.closing = true;
    if (!this.listening) return Promise.resolve();
    if (graceMs === 0) this.forceClose();
    if (this.closed) return this.closed;
    this.closed = new Promise((resolve) => {
      const timer = setTimeout(() => this.forceClose(), graceMs);
      this.server.close(() => {
        clearTimeout(timer);
        this.listening = false;
        resolve();
      });
      this.server.closeIdleConnections();
    });
    return this.closed;
  }

  private forceClose(): void {
    this.server.closeAllConnections();
    for (const s of this.tunnels) s.destroy();
  }
}

function describeListenError(err: NodeJS.ErrnoException, port: number, host: string): string {
  switch (err.code) {
    case 'EADDRINUSE':
      return `port ${port} on ${host} is in use by another process; stop it or choose another port`;
    case 'EACCES':
      return `no permission to listen on port ${port} on ${host}; use a port above 1023 or grant the capability`;
    case 'EADDRNOTAVAIL':
      return `address ${host} is not available on this machine; check the proxy's listen host`;
    default:
      return `cannot listen on ${host}:${port}: ${errorMessage(err)}`;
  }
}
