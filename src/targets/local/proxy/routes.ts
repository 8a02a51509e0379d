/**
 * The routing table's live state: routes, their backends and counters.
 * No I/O; the data plane reads `Route.backends`, which is replaced as a whole on every table change.
 */
import {
  normalizeHost,
  type BackendView,
  type DrainResult,
  type RouteTable,
  type RouteView,
  type RouteStatus,
  type TrafficSplit,
} from './protocol.js';
import { RouteCounters } from './stats.js';

/** How long a backend that refused a connection is passed over while others are available. */
const ejectMs = 1000;

export class Backend {
  inflight = 0;
  requests = 0;
  errors = 0;
  draining = false;
  /** Epoch ms until which the backend is avoided after a connect failure; 0 = fine. */
  downUntil = 0;
  readonly hostname: string;
  readonly port: number;

  constructor(
    readonly id: string,
    readonly url: string,
    public version: string,
    readonly routeKey: string,
    private readonly onIdle: (b: Backend) => void,
    public group: string | undefined = undefined,
  ) {
    const u = new URL(url);
    this.hostname = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
    this.port = Number(u.port);
  }

  acquire(): void {
    this.inflight++;
    this.requests++;
  }

  release(failed: boolean): void {
    if (failed) this.errors++;
    if (--this.inflight === 0) this.onIdle(this);
  }

  markDown(now: number): void {
    this.downUntil = now + ejectMs;
  }

  view(): BackendView {
    const { id, url, version, inflight, requests, errors, draining, group } = this;
    return { id, url, version, ...(group === undefined ? {} : { group }), inflight, requests, errors, draining };
  }
}

/**
 * Shares new requests between backend groups by weight with smooth weighted round robin (nginx's), so a fixed
 * number of requests splits exactly by weight, interleaved rather than in bursts.
 */
export class Split {
  private readonly entries: { group: string; weight: number; current: number }[];
  private readonly total: number;
  readonly stickyCookie: string | undefined;

  constructor(readonly spec: TrafficSplit) {
    this.entries = Object.entries(spec.weights)
      .filter(([, w]) => w > 0)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([group, weight]) => ({ group, weight, current: 0 }));
    this.total = this.entries.reduce((n, e) => n + e.weight, 0);
    this.stickyCookie = spec.stickyCookie;
  }

  /** Whether new requests may go to `group` (it has a weight above zero). */
  admits(group: string): boolean {
    return this.entries.some((e) => e.group === group);
  }

  /** The group of the next new request; undefined when no group has weight. */
  next(): string | undefined {
    let best: (typeof this.entries)[number] | undefined;
    for (const e of this.entries) {
      e.current += e.weight;
      if (best === undefined || e.current > best.current) best = e;
    }
    if (best) best.current -= this.total;
    return best?.group;
  }
}

/** Weights are kept across table updates that do not change them, so the rotation does not restart. */
function sameSplit(a: TrafficSplit | undefined, b: TrafficSplit | undefined): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

export class Route {
  /** Replaced, never mutated, so a request can keep using the array it started with. */
  backends: readonly Backend[] = [];
  readonly counters = new RouteCounters();
  /** Weighted groups; undefined means every backend takes an equal share. */
  split: Split | undefined;
  private cursor = 0;

  /** Names routed on the web ports (lower-case). */
  hosts: readonly string[] = [];
  /** HTTPS is wanted for `hosts`: redirect HTTP when a certificate is there; HSTS max-age when set. */
  tls: { hstsMaxAgeSeconds?: number } | undefined;

  constructor(
    readonly key: string,
    public port: number | undefined,
    public host: string | undefined,
  ) {}

  /**
   * Round robin, preferring the least in-flight backend and avoiding recently failed ones.
   * `tried` are backends this request already failed on. With `group`, backends of that group come first and
   * the others are only a fallback (every backend of the group failed or none is left).
   */
  pick(tried: readonly Backend[] | null, group?: string): Backend | undefined {
    const list = this.backends;
    const n = list.length;
    if (n === 0) return undefined;
    const start = this.cursor;
    this.cursor = (start + 1) % n;
    let best: Backend | undefined;
    let bestScore = Infinity;
    let now = 0;
    for (let i = 0; i < n; i++) {
      const b = list[(start + i) % n];
      if (tried !== null && tried.includes(b)) continue;
      let score = b.inflight;
      if (group !== undefined && b.group !== group) score += 1e6;
      if (b.downUntil !== 0) {
        now ||= Date.now();
        if (b.downUntil > now) score += 1e9;
        else b.downUntil = 0;
      }
      if (score < bestScore) {
        best = b;
        bestScore = score;
      }
    }
    return best;
  }
}

/** Routes of one public port: by virtual host, else the port's default route. */
export interface PortRoutes {
  fallback: Route | undefined;
  byHost: Map<string, Route> | undefined;
}

export function resolveRoute(p: PortRoutes, hostHeader: string | undefined): Route | undefined {
  if (p.byHost === undefined || hostHeader === undefined) return p.fallback;
  return p.byHost.get(normalizeHost(hostHeader)) ?? p.fallback;
}

export interface AppliedTable {
  ports: Map<number, PortRoutes>;
  /** Routes that could not be placed (another route holds the same port and host), with the reason. */
  conflicts: Map<string, string>;
}

export class RoutingTable {
  private routes = new Map<string, Route>();
  private readonly draining = new Set<Backend>();
  private readonly idleWaiters = new Set<() => void>();
  private readonly onIdle = (b: Backend): void => {
    if (b.draining) this.draining.delete(b);
    for (const w of this.idleWaiters) w();
  };

  /** Replaces the whole table; backends that leave it drain. Synchronous, so the swap is atomic for requests. */
  apply(table: RouteTable): AppliedTable {
    const next = new Map<string, Route>();
    const ports = new Map<number, PortRoutes>();
    const conflicts = new Map<string, string>();
    const specs = [...table.routes].sort((a, b) => a.key.localeCompare(b.key));

    const claim = (port: number, host: string | undefined, route: Route): void => {
      let p = ports.get(port);
      if (!p) ports.set(port, (p = { fallback: undefined, byHost: undefined }));
      const holder = host === undefined ? p.fallback : p.byHost?.get(host);
      if (holder && holder !== route) {
        conflicts.set(route.key, `port ${port}${host ? ` host ${host}` : ''} is already routed to ${holder.key}`);
      } else if (host === undefined) {
        p.fallback = route;
      } else {
        (p.byHost ??= new Map()).set(host, route);
      }
    };

    for (const spec of specs) {
      const host = spec.host === undefined ? undefined : normalizeHost(spec.host);
      const route = this.routes.get(spec.key) ?? new Route(spec.key, spec.port, host);
      route.port = spec.port;
      route.host = host;
      route.hosts = (spec.hosts ?? []).map(normalizeHost);
      route.tls = spec.tls;

      const old = new Map(route.backends.map((b) => [b.id, b]));
      route.backends = spec.backends.map((s) => {
        const prev = old.get(s.id);
        if (prev && prev.url === s.url) {
          old.delete(s.id);
          prev.version = s.version;
          return prev;
        }
        return new Backend(s.id, s.url, s.version, spec.key, this.onIdle, s.group);
      });
      for (const [i, b] of route.backends.entries()) b.group = spec.backends[i].group;
      if (!sameSplit(route.split?.spec, spec.split)) route.split = spec.split ? new Split(spec.split) : undefined;
      for (const b of old.values()) this.retire(b);
      next.set(spec.key, route);

      if (spec.port !== undefined) claim(spec.port, host, route);
      if (table.web !== undefined) {
        for (const h of route.hosts) {
          claim(table.web.http, h, route);
          claim(table.web.https, h, route);
        }
      }
    }

    for (const [key, route] of this.routes) {
      if (next.has(key)) continue;
      for (const b of route.backends) this.retire(b);
      route.backends = [];
    }
    this.routes = next;
    return { ports, conflicts };
  }

  get(key: string): Route | undefined {
    return this.routes.get(key);
  }

  all(): Route[] {
    return [...this.routes.values()];
  }

  view(statusOf: (r: Route) => RouteStatus): RouteView[] {
    return this.all().map((r) => {
      const backends = r.backends.map((b) => b.view());
      for (const b of this.draining) if (b.routeKey === r.key) backends.push(b.view());
      return { ...statusOf(r), ...(r.host === undefined ? {} : { host: r.host }), ...(r.hosts.length ? { hosts: [...r.hosts] } : {}), backends };
    });
  }

  /** Requests in flight on backends with these ids, active or draining. */
  inflightOf(ids: ReadonlySet<string>): number {
    let n = 0;
    for (const r of this.routes.values()) for (const b of r.backends) if (ids.has(b.id)) n += b.inflight;
    for (const b of this.draining) if (ids.has(b.id)) n += b.inflight;
    return n;
  }

  /** Resolves when the given backends have no request in flight, or when the timeout passes. */
  waitIdle(backendIds: string[], timeoutMs: number): Promise<DrainResult> {
    const ids = new Set(backendIds);
    const initial = this.inflightOf(ids);
    if (initial === 0) return Promise.resolve({ drained: true, inflight: 0 });
    return new Promise((resolve) => {
      const check = (): void => {
        const inflight = this.inflightOf(ids);
        if (inflight === 0) finish({ drained: true, inflight });
      };
      const timer = setTimeout(() => finish({ drained: false, inflight: this.inflightOf(ids) }), timeoutMs);
      const finish = (r: DrainResult): void => {
        clearTimeout(timer);
        this.idleWaiters.delete(check);
        resolve(r);
      };
      this.idleWaiters.add(check);
    });
  }

  private retire(b: Backend): void {
    b.draining = true;
    if (b.inflight > 0) this.draining.add(b);
  }
}
