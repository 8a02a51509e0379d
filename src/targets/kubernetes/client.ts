/**
 * The connection to a cluster: a small REST client over one keep-alive connection pool. Objects go in and come back
 * as the API server sends them (plain JSON, no typed models that would drop fields they do not know). It does what
 * Keelson needs and no more: discovery, create, read, server-side apply (with dry-run and force), list (paged),
 * delete, pod logs and watch streams. A generated client for every kind cost 80 MiB of memory and most of Keelson's
 * CPU at a thousand apps (see bench/kubernetes.mjs).
 */
import { appendFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { TerminalError, TransientError } from '../../core/errors.js';
import { Credentials, loadConnection, type ClusterSpec, type Connection, type Credential } from './kubeconfig.js';
import type { KObject } from './objects.js';

export type { ClusterSpec };

/** An answer from the API server other than 2xx, with its `Status` reason and message. */
export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

export interface Resource {
  /** Plural, as in the REST path. */
  name: string;
  namespaced: boolean;
}

interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  /** The `Accept` header (default `application/json`): e.g. metadata-only lists (`as=PartialObjectMetadataList`). */
  accept?: string;
  signal?: AbortSignal;
}

export interface Cluster {
  api: KubeClient;
  /** Done with it: the last user of a shared client closes its connections. */
  release(): void;
}

const shared = new Map<string, { api: KubeClient; users: number }>();

/** `KEELSON_TRACE_REQUESTS=FILE`: one line per request sent (pid, epoch ms, ms since the process started, method, path and query, body bytes), for measuring. */
const TRACE = process.env.KEELSON_TRACE_REQUESTS || undefined;

/** How many times a request the API server refused with 429 (or 5xx and `Retry-After`) is sent again. */
const MAX_THROTTLED = 5;

/**
 * A client for the cluster `spec` names. Environments on the same cluster (same kubeconfig, context and server) share
 * one: one connection pool and one discovery cache, instead of a pool of sockets per environment.
 */
export function connect(spec: ClusterSpec & { impersonate?: string }): Cluster {
  const conn = loadConnection(spec);
  // One client per identity too: an environment that impersonates a service account never shares a client (its
  // discovery or its requests) with one that does not.
  const key = `${conn.server}\0${conn.origin}\0${spec.impersonate ?? ''}`;
  let entry = shared.get(key);
  if (!entry) shared.set(key, (entry = { api: new KubeClient(conn, spec.impersonate), users: 0 }));
  entry.users++;
  const e = entry;
  let released = false;
  return {
    api: e.api,
    release: () => {
      if (released) return;
      released = true;
      if (--e.users > 0) return;
      e.api.close();
      if (shared.get(key) === e) shared.delete(key);
    },
  };
}

export class KubeClient {
  private readonly creds: Credentials;
  private readonly mod: typeof http | typeof https;
  private agent?: { agent: http.Agent; cert?: Buffer };
  private readonly retired: http.Agent[] = [];
  private readonly discovery = new Map<string, Promise<Map<string, Resource>>>();

  /** `impersonate`: the user every write acts as (`Impersonate-User`; the engine policy's service account). */
  constructor(
    readonly conn: Connection,
    readonly impersonate?: string,
  ) {
    this.creds = new Credentials(conn);
    this.mod = conn.server.startsWith('http://') ? http : https;
  }

  /** `{ name (plural), namespaced }` of a kind, from discovery (cached per apiVersion); undefined when not served. */
  async resourceOf(apiVersion: string, kind: string): Promise<Resource | undefined> {
    let p = this.discovery.get(apiVersion);
    if (!p) {
      p = this.request<{ resources?: { name: string; kind: string; namespaced: boolean }[] }>('GET', apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`).then(
        (list) => new Map((list.resources ?? []).filter((r) => !r.name.includes('/')).map((r) => [r.kind, { name: r.name, namespaced: r.namespaced }])),
        (err) => {
          if (isNotFound(err)) return new Map<string, Resource>();
          throw err;
        },
      );
      this.discovery.set(apiVersion, p);
      p.catch(() => this.discovery.delete(apiVersion));
    }
    return (await p).get(kind);
  }

  /** Forget discovery of `apiVersion` (a CRD was just established, or removed). */
  forget(apiVersion: string): void {
    this.discovery.delete(apiVersion);
  }

  /** The REST path of an object (`withName`) or of its collection. */
  async pathOf(o: { apiVersion: string; kind: string; metadata: { name?: string; namespace?: string } }, withName = true): Promise<string> {
    const r = await this.resourceOf(o.apiVersion, o.kind);
    if (!r) throw new ApiError(404, 'NotFound', `the server does not serve ${o.kind} in ${o.apiVersion}`);
    const base = collectionPath(o.apiVersion, r.name, r.namespaced ? (o.metadata.namespace ?? this.conn.namespace ?? 'default') : undefined);
    return withName ? `${base}/${encodeURIComponent(o.metadata.name ?? '')}` : base;
  }

  async create(o: KObject, fieldManager: string): Promise<KObject> {
    return this.request('POST', await this.pathOf(o, false), { body: o, query: { fieldManager } });
  }

  async read(o: Pick<KObject, 'apiVersion' | 'kind' | 'metadata'>): Promise<KObject> {
    return this.request('GET', await this.pathOf(o));
  }

  /**
   * Server-side apply: the object is the intent of `fieldManager`; `force` takes over fields others own.
   * `fieldValidation=Ignore`: the server's default (`Warn`) parses every apply body a second time to find unknown or
   * duplicate fields, only to report them in `Warning` headers that nothing here reads (unknown fields are dropped
   * either way, and a body from `JSON.stringify` has no duplicates). `strict` asks for `Strict` instead: an unknown
   * field fails the request (`keelson diff` dry-runs that way, to name misspelt fields before a merge).
   */
  async apply(o: KObject, opts: { fieldManager: string; force?: boolean; dryRun?: boolean; strict?: boolean }): Promise<KObject> {
    return this.request('PATCH', await this.pathOf(o), {
      body: o,
      contentType: 'application/apply-patch+yaml',
      query: { fieldManager: opts.fieldManager, fieldValidation: opts.strict ? 'Strict' : 'Ignore', force: opts.force || undefined, dryRun: opts.dryRun ? 'All' : undefined },
    });
  }

  async delete(o: Pick<KObject, 'apiVersion' | 'kind' | 'metadata'>, propagationPolicy: 'Background' | 'Foreground' = 'Background'): Promise<void> {
    await this.request('DELETE', await this.pathOf(o), { query: { propagationPolicy } });
  }

  /** Every object of a collection path, fetched in pages; `resourceVersion` is the list's, to watch from. */
  async listPath(path: string, labelSelector?: string): Promise<{ items: KObject[]; resourceVersion: string }> {
    const items: KObject[] = [];
    let cont: string | undefined;
    let resourceVersion = '';
    do {
      const page = await this.request<{ items?: KObject[]; metadata?: { continue?: string; resourceVersion?: string } }>('GET', path, {
        query: { labelSelector, limit: 500, continue: cont },
      });
      for (const o of page.items ?? []) items.push(o);
      cont = page.metadata?.continue || undefined;
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
    } while (cont);
    return { items, resourceVersion };
  }

  async list(apiVersion: string, kind: string, o: { namespace?: string; labelSelector?: string } = {}): Promise<KObject[]> {
    const r = await this.resourceOf(apiVersion, kind);
    if (!r) throw new ApiError(404, 'NotFound', `the server does not serve ${kind} in ${apiVersion}`);
    const { items } = await this.listPath(collectionPath(apiVersion, r.name, r.namespaced ? o.namespace : undefined), o.labelSelector);
    return items.map((i) => ({ ...i, apiVersion, kind }));
  }

  /** A finished container's whole log as text. */
  async podLog(namespace: string, pod: string, container: string): Promise<string> {
    const res = await this.send('GET', `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}/log`, { query: { container } });
    return (await readBody(res)).toString('utf8');
  }

  /**
   * A watch stream on `path`: `onEvent` gets every event in order; resolves when the server ends the stream (its
   * timeout), rejects when the connection fails. Abort `signal` to stop it.
   */
  async watch(path: string, query: RequestOptions['query'], onEvent: (e: { type: string; object: any }) => void, signal: AbortSignal): Promise<void> {
    const res = await this.send('GET', path, { query: { ...query, watch: 1 }, signal });
    // The server ends a watch after `timeoutSeconds`; one silent for longer is a dead connection (a half-open TCP
    // after a control plane node or a NAT went away), which would otherwise leave the cache stale for many minutes.
    const silentMs = ((Number(query?.timeoutSeconds) || 300) + 30) * 1000;
    res.socket?.setTimeout(silentMs, () => res.destroy(new TransientError(`the watch on ${path} was silent for ${silentMs / 1000} s`)));
    await new Promise<void>((resolve, reject) => {
      let rest = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        rest += chunk;
        let nl: number;
        while ((nl = rest.indexOf('\n')) >= 0) {
          const line = rest.slice(0, nl);
          rest = rest.slice(nl + 1);
          if (!line.trim()) continue;
          try {
            onEvent(JSON.parse(line));
          } catch (err) {
            res.destroy(err as Error);
            return;
          }
        }
      });
      res.on('end', resolve);
      res.on('error', (err) => reject(err instanceof TransientError ? err : new TransientError(`the watch on ${path} failed: ${err.message}`, { cause: err })));
      res.on('close', () => (signal.aborted ? resolve() : reject(new TransientError(`the watch on ${path} closed`))));
    }).finally(() => res.socket?.setTimeout(0));
  }

  /** A JSON request; a non-2xx answer throws an `ApiError` with the server's message. */
  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.send(method, path, opts);
    const text = (await readBody(res)).toString('utf8');
    return (text ? JSON.parse(text) : {}) as T;
  }

  /**
   * Sends a request and returns the 2xx response unread; retries once with fresh credentials after a 401, and, as
   * client-go does, a few times after a 429 (or a 5xx with `Retry-After`): the API server refused the request before
   * doing anything, e.g. "storage is (re)initializing" while a resource's watch cache fills after a restart or a new CRD.
   */
  private async send(method: string, path: string, opts: RequestOptions, retried = false, throttled = 0): Promise<http.IncomingMessage> {
    const cred = await this.creds.get();
    const res = await this.once(method, path, opts, cred).catch((err: Error & { staleSocket?: boolean }) => {
      // A kept-alive connection the server closed as idle just as it was reused: the request never arrived.
      if (err.staleSocket && !retried) return this.once(method, path, opts, cred);
      throw err;
    });
    const code = res.statusCode ?? 0;
    if (code >= 200 && code < 300) return res;
    const body = (await readBody(res).catch(() => Buffer.alloc(0))).toString('utf8');
    if (code === 401 && !retried && (this.conn.exec || this.conn.tokenFile)) {
      this.creds.invalidate();
      return this.send(method, path, opts, true, throttled);
    }
    const retryAfter = Number(res.headers['retry-after']);
    if ((code === 429 || (code >= 500 && Number.isFinite(retryAfter))) && throttled < MAX_THROTTLED && !opts.signal?.aborted) {
      const seconds = Number.isFinite(retryAfter) && retryAfter >= 0 ? Math.min(retryAfter, 10) : 1;
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
      return this.send(method, path, opts, retried, throttled + 1);
    }
    throw errorOf(code, body);
  }

  private once(method: string, path: string, opts: RequestOptions, cred: Credential): Promise<http.IncomingMessage> {
    const url = new URL(this.conn.server + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const body = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
    if (TRACE) appendFileSync(TRACE, `${process.pid} ${Date.now()} ${Math.round(performance.now())} ${method} ${url.pathname}${url.search} ${body?.length ?? 0}\n`);
    const headers: http.OutgoingHttpHeaders = { accept: opts.accept ?? 'application/json', 'user-agent': 'keelson' };
    if (cred.authorization) headers.authorization = cred.authorization;
    // Writes act as the policy's identity, so the API server's RBAC for it decides what the environment may change;
    // reads (discovery, the cluster-wide list + watch of Keelson's objects, logs) stay the engine's own.
    if (this.impersonate && method !== 'GET') headers['impersonate-user'] = this.impersonate;
    if (body) {
      headers['content-type'] = opts.contentType ?? 'application/json';
      headers['content-length'] = body.length;
    }
    return new Promise((resolve, reject) => {
      const req = this.mod.request(url, { method, headers, agent: this.agentFor(cred), signal: opts.signal }, resolve);
      req.on('error', (err: NodeJS.ErrnoException) => {
        const e: Error & { staleSocket?: boolean } = connectionError(this.conn, err);
        if (req.reusedSocket && err.code === 'ECONNRESET') e.staleSocket = true;
        reject(e);
      });
      // Watches have their own silence limit (see watch); any other request gets an answer within a minute or fails.
      if (!opts.query?.watch) req.setTimeout(60_000, () => req.destroy(new Error('no answer within 60 s')));
      req.end(body);
    });
  }

  /**
   * One pool per client certificate (an exec plugin may hand out a new one), with one TLS context: made per
   * connection, parsing the key and the CAs was a tenth of Keelson's CPU at a thousand apps.
   */
  private agentFor(cred: Credential): http.Agent {
    if (this.agent && this.agent.cert === cred.cert) return this.agent.agent;
    // A new certificate: new connections use it; the old pool's requests and watches finish on theirs.
    if (this.agent) this.retired.push(this.agent.agent);
    const c = this.conn;
    const agent =
      this.mod === http
        ? new http.Agent({ keepAlive: true })
        : new https.Agent({
            keepAlive: true,
            secureContext: tls.createSecureContext({ ca: c.ca, cert: cred.cert, key: cred.key }),
            rejectUnauthorized: !c.insecure,
            servername: c.serverName,
          });
    this.agent = { agent, cert: cred.cert };
    return agent;
  }

  close(): void {
    this.agent?.agent.destroy();
    for (const a of this.retired.splice(0)) a.destroy();
    this.agent = undefined;
  }
}

/** The whole body; a connection lost mid-answer (an API server restarting, a load balancer) is transient. */
function readBody(res: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let ended = false;
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => {
      ended = true;
      resolve(Buffer.concat(chunks));
    });
    res.on('error', (err) => reject(new TransientError(`the API server's answer was cut off: ${err.message}`, { cause: err })));
    res.on('close', () => {
      if (!ended) reject(new TransientError("the API server's answer was cut off"));
    });
  });
}

function errorOf(code: number, body: string): ApiError {
  let status: any;
  try {
    status = JSON.parse(body);
  } catch {
    status = undefined;
  }
  const message = status?.message ?? (body.trim().slice(0, 300) || `HTTP ${code}`);
  return new ApiError(status?.code ?? code, status?.reason, message);
}

function connectionError(c: Connection, err: Error): Error {
  if (err.name === 'AbortError') return err;
  return new TransientError(`cannot reach the Kubernetes API server ${c.server} (${c.origin}): ${err.message}`, { cause: err });
}

/**
 * Whether retrying later may succeed without any change to the desired state: the API server was unreachable, or
 * answered 429 (too many requests), 5xx, or timed out. A 4xx (invalid, forbidden, conflict) needs a change instead.
 */
export function isTransient(err: unknown): boolean {
  if (err instanceof TransientError) return true;
  if (err instanceof ApiError) return err.code === 429 || err.code >= 500;
  return false;
}

export function statusCode(err: unknown): number | undefined {
  return err instanceof ApiError ? err.code : undefined;
}

export function isNotFound(err: unknown): boolean {
  return statusCode(err) === 404;
}

/** The API server's own message (`Status.message`) with its reason. */
export function apiMessage(err: unknown): string {
  if (err instanceof ApiError && err.code === 403) {
    // RBAC said no: the fix is in Keelson's own install, not in the ops repository.
    return `(${err.reason ?? 'Forbidden'}) ${err.message}; grant Keelson's identity this permission (the Helm chart's rbac.rules value, or deploy/kubernetes/rbac.yaml) or remove the object`;
  }
  if (err instanceof ApiError) return `${err.reason ? `(${err.reason}) ` : ''}${err.message}`;
  if (err instanceof TerminalError) return err.message;
  return err instanceof Error ? err.message : String(err);
}

/** The REST path of a kind's collection: `/apis/apps/v1/deployments` (all namespaces) or within one namespace. */
export function collectionPath(apiVersion: string, plural: string, namespace?: string): string {
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  return namespace ? `${base}/namespaces/${encodeURIComponent(namespace)}/${plural}` : `${base}/${plural}`;
}

export type { KObject };
