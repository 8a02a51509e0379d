/**
 * The API on every engine (README: "The API on every engine"): with several engines on one ops repository, each
 * environment is run by the engine holding its claim, and only that engine's store has the environment's status,
 * history, events and app logs. A request about an environment run by another engine is forwarded to that engine's
 * advertised API (`--advertise-url`, kept in its claim) with the caller's Authorization header unchanged; the answer
 * is passed back as it is. `GET /api/v1/status`, `/api/v1/history` and the dashboard's matrix without `env` merge the
 * answers of every engine that runs an environment.
 *
 * A forwarded request carries `X-Keelson-Forwarded-By: <engine>`: an engine answers such a request itself, never
 * forwards it again (no loops, also when two engines disagree for a moment about who holds a claim). The answer
 * carries `X-Keelson-Served-By: <engine>`. An engine that does not answer gives a 502 that names it and says what to do.
 */
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import type { Context, MiddlewareHandler } from 'hono';
import { errorMessage } from '../core/errors.js';
import type { EnvironmentStatusView, StatusView } from '../engine/engine.js';
import type { Logger } from '../log.js';
import type { SyncRecord } from '../store/store.js';

export const FORWARDED_BY = 'x-keelson-forwarded-by';
export const SERVED_BY = 'x-keelson-served-by';

/** The other engine that runs an environment, and where its API is. */
export interface Peer {
  engine: string;
  url: string;
  /** When its claim expires unless renewed (its clock): a dead engine's environment is taken over after that. */
  expiresAt: string | null;
}

export interface PeersOptions {
  /** This engine's identity. */
  self: string;
  /** Another engine that runs `env` and can be reached, or undefined: this engine answers itself. */
  peerOf: (env: string) => Peer | undefined;
  log: Logger;
  /** How long a merged status or history waits for each engine. Default 10 s. */
  timeoutMs?: number;
}

/** Request headers passed on to the engine that runs the environment (the caller's credentials unchanged). */
const passed = ['authorization', 'content-type', 'accept', 'last-event-id'];
/** Headers of a git webhook passed on to the other engines (the signature or token, the event, the body's type). */
const webhookHeaders = ['content-type', 'user-agent', 'x-hub-signature-256', 'x-hub-signature', 'x-github-event', 'x-github-delivery', 'x-gitlab-token', 'x-gitlab-event'];
/** Response headers not passed back: hop-by-hop, and the length (the answer is streamed on). */
const dropped = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'upgrade', 'proxy-connection', 'trailer']);
/** A peer that does not accept the connection in this time is reported (a dead pod's address may drop packets). */
const CONNECT_TIMEOUT_MS = 5_000;

/**
 * The environment a request to forward is about: `/api/v1/environments/:env/…`, or `env=` of the history. Status and
 * matrix are merged instead (`mergeStatus`); other routes (events, audit, preview, webhooks, metrics) are answered by
 * each engine.
 */
export function environmentOfRequest(path: string, query: (name: string) => string | undefined): string | undefined {
  const m = /^\/api\/v1\/environments\/([^/]+)(?:\/|$)/.exec(path);
  if (m) {
    try {
      return decodeURIComponent(m[1]);
    } catch {
      return undefined;
    }
  }
  if (path === '/api/v1/history') return query('env') || undefined;
  return undefined;
}

export class Peers {
  constructor(private readonly o: PeersOptions) {}

  /** Whether the request was forwarded by another engine (then this engine answers it itself). */
  static forwarded(c: Context): boolean {
    return c.req.header(FORWARDED_BY) !== undefined;
  }

  /**
   * Forwards requests about environments run by another engine. Installed after the Host, Origin and auth checks:
   * an engine forwards only what it would have answered itself.
   */
  middleware(knows: (env: string) => boolean): MiddlewareHandler {
    return async (c, next) => {
      if (Peers.forwarded(c)) return next();
      const env = environmentOfRequest(c.req.path, (n) => c.req.query(n));
      if (!env || !knows(env)) return next();
      const peer = this.o.peerOf(env);
      if (!peer) return next();
      return this.forward(c, env, peer);
    };
  }

  private headers(authorization: string | undefined): Record<string, string> {
    return { [FORWARDED_BY]: this.o.self, accept: 'application/json', ...(authorization ? { authorization } : {}) };
  }

  private async forward(c: Context, env: string, peer: Peer): Promise<Response> {
    const url = new URL(c.req.url);
    const target = `${peer.url.replace(/\/+$/, '')}${url.pathname}${url.search}`;
    const headers: Record<string, string> = { [FORWARDED_BY]: this.o.self };
    for (const h of passed) {
      const v = c.req.header(h);
      if (v !== undefined) headers[h] = v;
    }
    // Host and Origin were checked here; the engine that runs the environment sees its own address as Host.
    const method = c.req.method;
    const body = method === 'GET' || method === 'HEAD' ? undefined : await c.req.arrayBuffer();
    let res: IncomingMessage;
    try {
      res = await send(new URL(target), method, headers, body ? Buffer.from(body) : undefined, c.req.raw.signal);
    } catch (err) {
      if (c.req.raw.signal.aborted) return new Response(null, { status: 499 }); // the caller went away first
      const why = causeOf(err);
      this.o.log.warn({ env, engine: peer.engine, url: peer.url, path: url.pathname, err: why }, 'the engine running the environment did not answer');
      return c.json(
        {
          error: 'BadGateway',
          message:
            `environment "${env}" is run by engine ${peer.engine} (${peer.url}), which did not answer this engine (${this.o.self}): ${why}. ` +
            `If that engine stopped, another engine takes the environment over once its claim expires${peer.expiresAt ? ` (${peer.expiresAt})` : ''}: try again then. ` +
            `If it runs, check that ${peer.url} (its --advertise-url; in a pod http://$POD_IP:port) is reachable from this engine.`,
          engine: peer.engine,
          url: peer.url,
        },
        502,
        { 'retry-after': '5' },
      );
    }
    const out = new Headers();
    for (const [k, v] of Object.entries(res.headers)) {
      if (v === undefined || dropped.has(k)) continue;
      for (const one of Array.isArray(v) ? v : [v]) out.append(k, one);
    }
    if (!out.has(SERVED_BY)) out.set(SERVED_BY, peer.engine);
    const status = res.statusCode ?? 502;
    const empty = method === 'HEAD' || status === 204 || status === 304;
    if (empty) res.resume();
    // Streamed as it comes (log follow, one-off runs); the client going away destroys the connection to the peer.
    return new Response(empty ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), { status, headers: out });
  }

  /**
   * Passes an accepted git webhook on to every engine running an environment, with its signature headers and body
   * unchanged (every engine has the same webhook secret and checks it again), so that each fetches at once, not at its
   * next poll. Resolves when every engine answered or failed (failures are logged: that engine fetches at its poll).
   */
  async relayWebhook(headers: Headers, body: Buffer, names: string[]): Promise<void> {
    const urls = new Map<string, Peer>();
    for (const { peer } of this.elsewhere(names).values()) urls.set(peer.url, peer);
    const pass: Record<string, string> = { [FORWARDED_BY]: this.o.self };
    for (const h of webhookHeaders) {
      const v = headers.get(h);
      if (v !== null) pass[h] = v;
    }
    await Promise.all(
      [...urls.values()].map(async (peer) => {
        try {
          const res = await fetch(`${peer.url.replace(/\/+$/, '')}/api/v1/webhooks/git`, { method: 'POST', headers: pass, body: new Uint8Array(body), signal: AbortSignal.timeout(this.o.timeoutMs ?? 10_000) });
          await res.body?.cancel();
          if (res.status !== 202) throw new Error(`answered ${res.status}`);
        } catch (err) {
          this.o.log.warn({ engine: peer.engine, url: peer.url, err: causeOf(err) }, 'git webhook not passed on to another engine; it fetches at its next poll');
        }
      }),
    );
  }

  /** The environments run elsewhere, grouped by the engine running them. */
  private elsewhere(names: string[]): Map<string, { peer: Peer; envs: string[] }> {
    const out = new Map<string, { peer: Peer; envs: string[] }>();
    for (const env of names) {
      const peer = this.o.peerOf(env);
      if (!peer) continue;
      const key = `${peer.engine}\0${peer.url}`;
      if (!out.has(key)) out.set(key, { peer, envs: [] });
      out.get(key)!.envs.push(env);
    }
    return out;
  }

  private async getJson<T>(peer: Peer, path: string, authorization: string | undefined): Promise<T> {
    const res = await fetch(`${peer.url.replace(/\/+$/, '')}${path}`, { headers: this.headers(authorization), signal: AbortSignal.timeout(this.o.timeoutMs ?? 10_000) });
    if (!res.ok) {
      const body = (await res.json().catch(() => ({}))) as { message?: string };
      throw new Error(`${res.status}${body.message ? `: ${body.message}` : ''}`);
    }
    return (await res.json()) as T;
  }

  /**
   * This engine's status with each environment run by another engine replaced by that engine's answer (`peer` says
   * whose). An engine that does not answer leaves this engine's view of its environments, with `peer.error`.
   */
  async mergeStatus(local: StatusView, authorization: string | undefined): Promise<StatusView> {
    const groups = this.elsewhere(local.environments.map((e) => e.name));
    if (groups.size === 0) return local;
    const replaced = new Map<string, EnvironmentStatusView>();
    await Promise.all(
      [...groups.values()].map(async ({ peer, envs }) => {
        const ref = { engine: peer.engine, url: peer.url };
        try {
          const query = local.environments.length === 1 ? `?env=${encodeURIComponent(envs[0])}` : '';
          const theirs = await this.getJson<StatusView>(peer, `/api/v1/status${query}`, authorization);
          for (const env of envs) {
            const e = theirs.environments.find((x) => x.name === env);
            // Its apps, sync and errors; the claim as this engine sees it (`Standby: claimed by …`, not "this engine").
            if (e) replaced.set(env, { ...e, claim: local.environments.find((x) => x.name === env)!.claim, peer: { ...ref, error: null } });
            else replaced.set(env, { ...local.environments.find((x) => x.name === env)!, peer: { ...ref, error: `engine ${peer.engine} does not know environment "${env}" (another --env?)` } });
          }
        } catch (err) {
          const why = `engine ${peer.engine} (${peer.url}) did not answer: ${causeOf(err)}; this engine's own view is shown`;
          this.o.log.warn({ engine: peer.engine, url: peer.url, err: causeOf(err) }, 'status of another engine unavailable');
          for (const env of envs) replaced.set(env, { ...local.environments.find((x) => x.name === env)!, peer: { ...ref, error: why } });
        }
      }),
    );
    return { ...local, environments: local.environments.map((e) => replaced.get(e.name) ?? e) };
  }

  /**
   * History of every environment: this engine's syncs and those of every engine running an environment, newest first.
   * (Syncs of an engine that runs no environment now are not included.) An engine that does not answer is left out.
   */
  async mergeHistory(local: SyncRecord[], names: string[], query: string, limit: number, authorization: string | undefined): Promise<SyncRecord[]> {
    const groups = this.elsewhere(names);
    if (groups.size === 0) return local;
    const all = [...local];
    const seen = new Set<string>();
    await Promise.all(
      [...groups.values()].map(async ({ peer }) => {
        if (seen.has(peer.url)) return;
        seen.add(peer.url);
        try {
          all.push(...(await this.getJson<{ syncs: SyncRecord[] }>(peer, `/api/v1/history${query}`, authorization)).syncs);
        } catch (err) {
          this.o.log.warn({ engine: peer.engine, url: peer.url, err: causeOf(err) }, 'history of another engine unavailable');
        }
      }),
    );
    return all.sort((a, b) => (a.startedAt < b.startedAt ? 1 : a.startedAt > b.startedAt ? -1 : 0)).slice(0, limit);
  }
}

/**
 * One request to a peer with node:http: no limit on how long the answer takes (a sync waits for its rollout, a log
 * follow may be quiet for long), but one on connecting.
 */
function send(target: URL, method: string, headers: Record<string, string>, body: Buffer | undefined, signal: AbortSignal): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = (target.protocol === 'https:' ? https : http).request(target, { method, headers: { ...headers, ...(body ? { 'content-length': String(body.length) } : {}) }, signal }, resolve);
    const timer = setTimeout(() => req.destroy(new Error(`no connection within ${CONNECT_TIMEOUT_MS / 1000}s`)), CONNECT_TIMEOUT_MS);
    req.once('socket', (socket) => {
      if (!socket.connecting) clearTimeout(timer);
      else socket.once('connect', () => clearTimeout(timer));
    });
    req.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.once('response', () => clearTimeout(timer));
    req.end(body);
  });
}

/** Why a fetch failed, with the system error (`connect ECONNREFUSED 10.0.0.5:7070`) when there is one. */
function causeOf(err: unknown): string {
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof Error) return cause.message || errorMessage(err);
  if ((err as Error)?.name === 'TimeoutError') return 'no answer in time';
  return errorMessage(err);
}
