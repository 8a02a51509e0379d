/** The control channel: JSON over HTTP on a Unix socket, owned by the proxy process. */
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import type { z } from 'zod';
import { errorMessage } from '../../../core/errors.js';
import type { Logger } from '../../../log.js';
import { drainRequestSchema, routeTableSchema, type Health, type RouteTable } from './protocol.js';
import type { Proxy } from './server.js';

const maxBodyBytes = 16 * 1024 * 1024;
// sockaddr_un.sun_path is 108 bytes on Linux (104 on macOS), including the terminating NUL.
const maxSocketPathBytes = process.platform === 'linux' ? 107 : 103;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function createControlHandler(proxy: Proxy, health: () => Health, log: Logger): http.RequestListener {
  const route = async (req: http.IncomingMessage): Promise<unknown> => {
    const path = (req.url ?? '/').split('?')[0];
    switch (`${req.method} ${path}`) {
      case 'GET /healthz':
        return health();
      case 'GET /routes':
        return proxy.routes();
      case 'PUT /routes':
        return proxy.putRoutes(parse(routeTableSchema, await readJson(req), 'routing table') as RouteTable);
      case 'POST /drain': {
        const body = parse(drainRequestSchema, await readJson(req), 'drain request');
        return proxy.drain(body.backendIds, body.timeoutMs);
      }
      case 'GET /stats':
        return proxy.stats();
      default:
        throw new HttpError(404, `no control endpoint ${req.method} ${path}`);
    }
  };
  return (req, res) => {
    route(req).then(
      (body) => send(res, 200, body),
      (err: unknown) => {
        const status = err instanceof HttpError ? err.status : 500;
        if (status === 500) log.error({ err, method: req.method, path: req.url }, 'control request failed');
        send(res, status, { error: errorMessage(err) });
      },
    );
  };
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
  throw new HttpError(400, `invalid ${what}: ${issues}`);
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBodyBytes) throw new HttpError(413, `request body is larger than ${maxBodyBytes} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new HttpError(400, `request body is not JSON: ${errorMessage(err)}`);
  }
}

/** Whether something accepts connections on the Unix socket at `socketPath`. */
function socketAnswers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Listens on `socketPath`, replacing a stale socket file left by a dead proxy; refuses when a live
 * process answers there. The socket is made owner-only: whoever can write to it controls public ports.
 */
export async function listenControl(server: http.Server, socketPath: string): Promise<void> {
  if (Buffer.byteLength(socketPath) > maxSocketPathBytes) {
    throw new Error(
      `control socket path ${socketPath} is longer than ${maxSocketPathBytes} bytes; use a shorter state directory`,
    );
  }
  if (await socketAnswers(socketPath)) {
    throw new Error(`another proxy is already running on ${socketPath}; stop it or use another state directory`);
  }
  const existing = await fs.lstat(socketPath).catch(() => undefined);
  if (existing && !existing.isSocket()) {
    throw new Error(`${socketPath} exists and is not a socket; remove it or use another state directory`);
  }
  if (existing) await fs.rm(socketPath);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await fs.chmod(socketPath, 0o600);
}
