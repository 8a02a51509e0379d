/**
 * The proxy's control protocol: JSON over HTTP on a Unix socket in the state dir.
 * Plain types shared by the proxy (server side) and `ProxyClient`; the schema validates what the engine sends.
 */
import { z } from 'zod';

export interface BackendSpec {
  /** Unique across the whole table, e.g. the replica id. */
  id: string;
  /** `http://127.0.0.1:PORT` of one ready replica. */
  url: string;
  version: string;
  /** The replica set this backend belongs to (e.g. its template hash); `split` weights refer to groups. */
  group?: string;
}

/**
 * How new requests are shared between backend groups (blue/green, canary). Backends of groups without weight
 * take no new requests, only retries when every weighted backend failed.
 */
export interface TrafficSplit {
  /** Relative weight per group, e.g. `{ "stable1": 80, "canary2": 20 }`. */
  weights: Record<string, number>;
  /** Name of a cookie that keeps a client on the group that first answered it. */
  stickyCookie?: string;
}

export interface RouteSpec {
  /** `env/app`. */
  key: string;
  /** Public port the proxy listens on; absent for a route reached only by its `hosts` on the web ports. */
  port?: number;
  /** Optional virtual host: requests whose Host header matches go here; without it the route is the port's default. */
  host?: string;
  /** Public names routed on the shared web ports (`RouteTable.web`): HTTP, and HTTPS for names with a certificate. */
  hosts?: string[];
  /** The route's hosts are meant for HTTPS: HTTP requests for a host with a certificate are redirected (308). */
  tls?: { hstsMaxAgeSeconds?: number };
  backends: BackendSpec[];
  /** Without it, every backend takes an equal share. */
  split?: TrafficSplit;
}

/** The shared ports of host-routed apps (80/443 unless the engine says otherwise). */
export interface WebPorts {
  http: number;
  https: number;
}

/** A certificate and its key, PEM files in the state dir that the proxy reads; served for `hosts` by SNI. */
export interface CertificateSpec {
  hosts: string[];
  certFile: string;
  keyFile: string;
}

/** The full desired routing table; every PUT replaces the previous one. */
export interface RouteTable {
  routes: RouteSpec[];
  web?: WebPorts;
  certificates?: CertificateSpec[];
  /** ACME HTTP-01 answers: token → key authorization, served on every HTTP port at `/.well-known/acme-challenge/`. */
  challenges?: Record<string, string>;
  /**
   * ACME TLS-ALPN-01 answers: host → the challenge certificate and its (throwaway) key, PEM, served on the HTTPS web
   * port to clients that ask for the `acme-tls/1` protocol.
   */
  alpnChallenges?: Record<string, { cert: string; key: string }>;
  /** Peer addresses whose `X-Forwarded-For` is kept (appended to); from everyone else it is replaced. */
  trustedProxies?: string[];
}

export interface RouteStatus {
  key: string;
  port?: number;
  listening: boolean;
  error?: string;
}

export interface CertificateStatus {
  hosts: string[];
  certFile: string;
  /** Loaded and served (a previous version may still be served when a new file failed to load: see `error`). */
  loaded: boolean;
  notAfter?: string;
  issuer?: string;
  serial?: string;
  error?: string;
}

/** Answer to `PUT /routes`: every route of the new table with its listener's state, and the certificates. */
export interface TableStatus {
  routes: RouteStatus[];
  certificates?: CertificateStatus[];
}

export interface BackendCounters {
  inflight: number;
  requests: number;
  errors: number;
}

export interface BackendView extends BackendSpec, BackendCounters {
  draining: boolean;
}

export interface RouteView extends RouteStatus {
  host?: string;
  hosts?: string[];
  /** Active backends first, then those draining (removed but with requests still in flight). */
  backends: BackendView[];
}

export interface RoutesView {
  routes: RouteView[];
  certificates?: CertificateStatus[];
}

export interface DrainResult {
  drained: boolean;
  /** Requests still in flight on the given backends. */
  inflight: number;
}

export interface Health {
  pid: number;
  startedAt: string;
}

/** Upper bounds (seconds) of the latency buckets, Prometheus style; the last bucket is +Inf. */
export const latencyBucketsSeconds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

export interface LatencyHistogram {
  /** Cumulative counts per upper bound; `le: "+Inf"` equals `count`. */
  buckets: { le: string; count: number }[];
  sumSeconds: number;
  count: number;
}

export interface RequestStats {
  requests: number;
  /** Responses with status >= 500, including the proxy's own 502/503/504. */
  errors5xx: number;
  latency: LatencyHistogram;
}

export interface VersionStats extends RequestStats {
  version: string;
}

export interface GroupStats extends RequestStats {
  group: string;
}

export interface RouteStats extends RequestStats {
  key: string;
  versions: VersionStats[];
  /** Per backend group (see `BackendSpec.group`); what canary analysis reads. */
  groups: GroupStats[];
}

export interface StatsView {
  startedAt: string;
  routes: RouteStats[];
}

const backendSchema = z.object({
  id: z.string().min(1),
  url: z.string().refine(isBackendUrl, { message: 'must be an http://host:port URL' }),
  version: z.string(),
  group: z.string().min(1).optional(),
});

// A cookie name is an RFC 6265 token.
const cookieName = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

const splitSchema = z.object({
  weights: z.record(z.string().min(1), z.number().min(0).max(1_000_000)),
  stickyCookie: z.string().regex(cookieName, { message: 'must be a cookie name (letters, digits, -_.)' }).optional(),
});

const portSchema = z.number().int().min(1).max(65535);

const routeSchema = z.object({
  key: z.string().min(1),
  port: portSchema.optional(),
  host: z.string().min(1).optional(),
  hosts: z.array(z.string().min(1)).optional(),
  tls: z.object({ hstsMaxAgeSeconds: z.number().int().min(0).optional() }).optional(),
  backends: z.array(backendSchema),
  split: splitSchema.optional(),
});

const certificateSchema = z.object({
  hosts: z.array(z.string().min(1)).min(1),
  certFile: z.string().min(1),
  keyFile: z.string().min(1),
});

export const routeTableSchema = z
  .object({
    routes: z.array(routeSchema),
    web: z.object({ http: portSchema, https: portSchema }).optional(),
    certificates: z.array(certificateSchema).optional(),
    challenges: z.record(z.string().regex(/^[A-Za-z0-9_-]+$/), z.string()).optional(),
    alpnChallenges: z.record(z.string().min(1), z.object({ cert: z.string().min(1), key: z.string().min(1) })).optional(),
    trustedProxies: z.array(z.string().min(1)).optional(),
  })
  .superRefine((table, ctx) => {
    const keys = new Set<string>();
    const ids = new Set<string>();
    table.routes.forEach((r, i) => {
      if (keys.has(r.key)) ctx.addIssue({ code: 'custom', path: ['routes', i, 'key'], message: `duplicate route ${r.key}` });
      keys.add(r.key);
      r.backends.forEach((b, j) => {
        if (ids.has(b.id)) {
          ctx.addIssue({ code: 'custom', path: ['routes', i, 'backends', j, 'id'], message: `duplicate backend ${b.id}` });
        }
        ids.add(b.id);
      });
    });
  });

export const drainRequestSchema = z.object({
  backendIds: z.array(z.string()),
  timeoutMs: z.number().int().min(0).max(3_600_000),
});

function isBackendUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return u.protocol === 'http:' && u.hostname !== '' && u.port !== '';
  } catch {
    return false;
  }
}

/** Host header value without port, lower-cased; `[::1]:80` → `[::1]`. */
export function normalizeHost(host: string): string {
  const end = host.startsWith('[') ? host.indexOf(']') + 1 : host.indexOf(':');
  return (end > 0 ? host.slice(0, end) : host).toLowerCase();
}
