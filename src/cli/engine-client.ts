/** How CLI commands reach a running engine: its URL and token, and one request helper with one set of errors. */
import { ExitError } from '../core/errors.js';

/** Flags every client command takes. */
export const clientFlags = { server: { type: 'string' }, token: { type: 'string' } } as const;

export interface Connection {
  server: string;
  headers: Record<string, string>;
}

/** --server (or KEELSON_SERVER, default http://127.0.0.1:7070) and --token (or KEELSON_TOKEN). */
export function connection(values: { server?: string; token?: string }): Connection {
  const server = (values.server ?? process.env.KEELSON_SERVER ?? 'http://127.0.0.1:7070').replace(/\/$/, '');
  const token = values.token ?? process.env.KEELSON_TOKEN;
  return { server, headers: token ? { authorization: `Bearer ${token}` } : {} };
}

/** A request to the engine; an unreachable engine or an error answer becomes an ExitError with its message. */
export async function request(c: Connection, path: string, init: RequestInit = {}): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(c.server + path, { ...init, headers: { ...c.headers, ...(init.headers as Record<string, string> | undefined) } });
  } catch {
    throw new ExitError(1, `cannot reach Keelson at ${c.server}; is \`keelson up\` running? (set --server or KEELSON_SERVER)`);
  }
  if (!res.ok) {
    const body = (await res.json().catch(() => ({}))) as { message?: string };
    throw new ExitError(1, body.message ?? `${res.status} ${res.statusText}`);
  }
  return res;
}

export async function call<T>(c: Connection, path: string, init?: RequestInit): Promise<T> {
  return (await (await request(c, path, init)).json()) as T;
}
