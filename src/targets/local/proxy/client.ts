/** The engine's side of the control channel. */
import http from 'node:http';
import { errorMessage } from '../../../core/errors.js';
import type { DrainResult, Health, RoutesView, RouteTable, StatsView, TableStatus } from './protocol.js';

/** Nothing answers on the control socket: the proxy is not running (start or adopt it). */
export class ProxyUnreachableError extends Error {
  constructor(
    readonly socketPath: string,
    options?: { cause?: unknown },
  ) {
    super(`proxy not reachable at ${socketPath}; is \`keelson proxy\` running?`, options);
    this.name = 'ProxyUnreachableError';
  }
}

export interface ProxyClientOptions {
  /** Per-call timeout; `drain` adds its own wait on top. */
  timeoutMs?: number;
}

const unreachableCodes = new Set(['ENOENT', 'ECONNREFUSED', 'ECONNRESET', 'ENOTSOCK', 'EACCES']);

export class ProxyClient {
  private readonly timeoutMs: number;

  constructor(
    readonly socketPath: string,
    opts: ProxyClientOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 5_000;
  }

  health(): Promise<Health> {
    return this.call('GET', '/healthz');
  }

  putRoutes(table: RouteTable): Promise<TableStatus> {
    return this.call('PUT', '/routes', table);
  }

  getRoutes(): Promise<RoutesView> {
    return this.call('GET', '/routes');
  }

  drain(backendIds: string[], timeoutMs: number): Promise<DrainResult> {
    return this.call('POST', '/drain', { backendIds, timeoutMs }, this.timeoutMs + timeoutMs);
  }

  stats(): Promise<StatsView> {
    return this.call('GET', '/stats');
  }

  private call<T>(method: string, path: string, body?: unknown, timeoutMs = this.timeoutMs): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const what = `${method} ${path}`;
    return new Promise<T>((resolve, reject) => {
      const req = http.request(
        {
          socketPath: this.socketPath,
          method,
          path,
          agent: false,
          headers: payload === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown;
            try {
              parsed = JSON.parse(text);
            } catch {
              reject(new Error(`proxy at ${this.socketPath} answered ${what} with non-JSON (status ${res.statusCode})`));
              return;
            }
            if ((res.statusCode ?? 500) >= 400) {
              const msg = (parsed as { error?: string })?.error ?? `status ${res.statusCode}`;
              reject(new Error(`proxy at ${this.socketPath} refused ${what}: ${msg}`));
            } else {
              resolve(parsed as T);
            }
          });
        },
      );
      req.setTimeout(timeoutMs, () => {
        req.destroy(new Error(`proxy at ${this.socketPath} did not answer ${what} within ${timeoutMs} ms`));
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code !== undefined && unreachableCodes.has(err.code) && !req.reusedSocket) {
          reject(new ProxyUnreachableError(this.socketPath, { cause: err }));
        } else {
          reject(err.message.startsWith('proxy at') ? err : new Error(`proxy at ${this.socketPath} failed ${what}: ${errorMessage(err)}`));
        }
      });
      req.end(payload);
    });
  }
}
