/**
 * One public port: an HTTP server, or the HTTPS server of the web port (certificates by SNI), whose routes are swapped
 * in place by the control plane. HTTP ports also answer ACME HTTP-01 challenges and redirect hosts that have a
 * certificate to HTTPS.
 */
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { errorMessage } from '../../../core/errors.js';
import type { CertificateStore } from './certs.js';
import type { Forwarder, Ingress } from './forward.js';
import type { TrustPeer } from './headers.js';
import { normalizeHost, type WebPorts } from './protocol.js';
import { resolveRoute, type PortRoutes, type Route } from './routes.js';

/** What every listener shares, replaced by table updates. */
export interface Edge {
  certs: CertificateStore;
  /** ACME HTTP-01: token → key authorization. */
  challenges: Map<string, string>;
  /** ACME TLS-ALPN-01: host → the challenge certificate's context. */
  alpn: Map<string, tls.SecureContext>;
  web: WebPorts | undefined;
  trust: TrustPeer;
}

const challengePrefix = '/.well-known/acme-challenge/';
const acmeTls = Buffer.from('acme-tls/1');

export class PortListener implements Ingress {
  routes: PortRoutes = { fallback: undefined, byHost: undefined };
  listening = false;
  error: string | undefined;
  closing = false;
  readonly tunnels = new Set<Duplex>();
  readonly proto: 'http' | 'https';
  private readonly server: http.Server;
  private closed: Promise<void> | undefined;

  constructor(
    readonly port: number,
    readonly listenHost: string,
    fw: Forwarder,
    private readonly edge: Edge,
    secure = false,
  ) {
    this.proto = secure ? 'https' : 'http';
    const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      if (!secure && req.url?.startsWith(challengePrefix) && this.answerChallenge(req, res)) return;
      const route = resolveRoute(this.routes, req.headers.host);
      if (!secure && route !== undefined && this.redirect(route, req, res)) return;
      fw.handle(route, this, req, res);
    };
    this.server = secure
      ? https.createServer(
          {
            minVersion: 'TLSv1.2',
            SNICallback: (servername, cb) => {
              const ctx = edge.certs.contextFor(servername);
              if (ctx) cb(null, ctx);
              else cb(new Error(`no certificate for ${servername}`));
            },
          },
          onRequest,
        )
      : http.createServer(onRequest);
    // A failed handshake (no certificate for the name, a client that does not trust it) is the client's business.
    this.server.on('tlsClientError', (_err, socket) => socket.destroy());
    this.server.on('upgrade', (req, socket, head) => {
      fw.upgrade(resolveRoute(this.routes, req.headers.host), this, req, socket, head);
    });
    if (secure) this.answerAlpnChallenges();
  }

  /**
   * TLS-ALPN-01: while a challenge is pending, the first bytes of each new connection (the ClientHello) are looked
   * at; a client asking for the `acme-tls/1` protocol (the CA's validator) is handed to a small TLS server that shows
   * the challenge certificate, every other one to the HTTPS server as usual. With no challenge pending, connections go
   * straight to the HTTPS server.
   */
  private answerAlpnChallenges(): void {
    const validator = tls.createServer({
      ALPNProtocols: ['acme-tls/1'],
      SNICallback: (servername, cb) => {
        const ctx = this.edge.alpn.get(servername.toLowerCase());
        if (ctx) cb(null, ctx);
        else cb(new Error(`no TLS-ALPN-01 challenge for ${servername}`));
      },
    });
    validator.on('secureConnection', (s) => s.end());
    validator.on('tlsClientError', (_err, s) => s.destroy());
    const https = this.server;
    const toHttps = https.listeners('connection') as ((socket: Socket) => void)[];
    https.removeAllListeners('connection');
    const handOver = (socket: Socket): void => {
      for (const l of toHttps) l.call(https, socket);
    };
    https.on('connection', (socket: Socket) => {
      if (this.edge.alpn.size === 0) return handOver(socket);
      socket.setTimeout(10_000, () => socket.destroy());
      socket.once('error', () => socket.destroy());
      socket.once('data', (hello: Buffer) => {
        socket.pause();
        socket.setTimeout(0);
        socket.unshift(hello);
        // A TLS handshake record whose ClientHello offers acme-tls/1.
        if (hello[0] === 0x16 && hello.includes(acmeTls)) validator.emit('connection', socket);
        else handOver(socket);
      });
    });
  }

  get trust(): TrustPeer {
    return this.edge.trust;
  }

  private answerChallenge(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    const token = (req.url ?? '').slice(challengePrefix.length).split('?')[0];
    const answer = this.edge.challenges.get(token);
    if (answer === undefined) return false;
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(answer) });
    res.end(answer);
    return true;
  }

  /** HTTP → HTTPS (308 keeps the method and body) for a host of a TLS route once its certificate is served. */
  private redirect(route: Route, req: http.IncomingMessage, res: http.ServerResponse): boolean {
    const web = this.edge.web;
    if (route.tls === undefined || web === undefined || this.port !== web.http || req.headers.host === undefined) return false;
    const host = normalizeHost(req.headers.host);
    if (!route.hosts.includes(host) || !this.edge.certs.has(host)) return false;
    const location = `https://${host}${web.https === 443 ? '' : `:${web.https}`}${req.url ?? '/'}`;
    res.writeHead(308, { Location: location, 'Content-Length': 0, ...(this.closing ? { Connection: 'close' } : {}) });
    res.end();
    req.resume();
    return true;
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
