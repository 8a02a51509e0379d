/**
 * Claims of Kubernetes environments: a `coordination.k8s.io/v1` Lease `keelson-env-<env>` in the environment's
 * namespace, through Keelson's own client. Writes are compare-and-swap on `metadata.resourceVersion`: an update from a
 * stale read answers 409 Conflict, which means another engine wrote first and won. The namespace is created when it
 * does not exist yet (the first sync would create it anyway).
 */
import { statusCode, isNotFound, type KubeClient } from '../targets/kubernetes/client.js';
import { LABEL_MANAGED_BY, type KObject } from '../targets/kubernetes/objects.js';
import { claimDefaults, requestTimeout, type ClaimBackend, type ClaimRecord, type ClaimWrite } from './claim.js';

const HOST = 'keelson.dev/claim-host';
const PID = 'keelson.dev/claim-pid';
const URL_ANNOTATION = 'keelson.dev/claim-url';
const FIELD_MANAGER = 'keelson';

export function leaseName(env: string): string {
  return `keelson-env-${env}`.slice(0, 253);
}

interface Lease extends KObject {
  spec?: { holderIdentity?: string; leaseDurationSeconds?: number; acquireTime?: string; renewTime?: string; leaseTransitions?: number };
}

export class LeaseClaims implements ClaimBackend {
  /** Engines on other machines: a Lease counts as expired by its own times only a minute after them (else by observation). */
  readonly clockSkewMs = 60_000;
  readonly where: string;

  constructor(
    private readonly api: KubeClient,
    private readonly namespace: string,
    private readonly env: string,
    /**
     * A claim request that takes longer is given up (and retried): an API server that does not answer must not stall
     * renewals past the time the holder stops writing (see `requestTimeout` in claim.ts).
     */
    private readonly requestTimeoutMs = requestTimeout(claimDefaults),
  ) {
    this.where = `Lease ${namespace}/${leaseName(env)}`;
  }

  private path(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(this.namespace)}/leases/${encodeURIComponent(leaseName(this.env))}`;
  }

  async read(): Promise<ClaimRecord | undefined> {
    let lease: Lease;
    try {
      lease = await this.api.request<Lease>('GET', this.path(), { signal: AbortSignal.timeout(this.requestTimeoutMs) });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    return recordOf(lease);
  }

  async write(_env: string, current: ClaimRecord | undefined, next: ClaimWrite): Promise<ClaimRecord | undefined> {
    const lease = this.leaseOf(next, current?.version);
    try {
      if (current) return recordOf(await this.api.request<Lease>('PUT', this.path(), { body: lease, signal: AbortSignal.timeout(this.requestTimeoutMs) }));
      try {
        return recordOf(await this.api.request<Lease>('POST', this.path().replace(/\/[^/]+$/, ''), { body: lease, signal: AbortSignal.timeout(this.requestTimeoutMs) }));
      } catch (err) {
        if (!isNotFound(err)) throw err;
        await this.api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: this.namespace, labels: { [LABEL_MANAGED_BY]: 'keelson' } } }, FIELD_MANAGER).catch((e) => {
          if (statusCode(e) !== 409) throw e;
        });
        return recordOf(await this.api.request<Lease>('POST', this.path().replace(/\/[^/]+$/, ''), { body: lease, signal: AbortSignal.timeout(this.requestTimeoutMs) }));
      }
    } catch (err) {
      if (statusCode(err) === 409) return undefined; // a stale resourceVersion, or created meanwhile: another engine won
      throw err;
    }
  }

  async release(_env: string, current: ClaimRecord): Promise<void> {
    // As client-go does: no holder and a 1 s duration, so a standby takes over at its next look.
    const lease = this.leaseOf({ ...current, holder: '', renewedAt: new Date().toISOString(), durationMs: 1000 }, current.version);
    await this.api.request('PUT', this.path(), { body: lease, signal: AbortSignal.timeout(this.requestTimeoutMs) }).catch((err) => {
      if (statusCode(err) !== 409 && !isNotFound(err)) throw err;
    });
  }

  private leaseOf(w: ClaimWrite, resourceVersion: string | undefined): Lease {
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {
        name: leaseName(this.env),
        namespace: this.namespace,
        labels: { [LABEL_MANAGED_BY]: 'keelson', 'keelson.dev/environment': this.env },
        annotations: { [HOST]: w.host, [PID]: String(w.pid), ...(w.url ? { [URL_ANNOTATION]: w.url } : {}) },
        ...(resourceVersion ? { resourceVersion } : {}),
      },
      spec: {
        holderIdentity: w.holder,
        leaseDurationSeconds: Math.max(1, Math.ceil(w.durationMs / 1000)),
        acquireTime: microTime(w.acquiredAt),
        renewTime: microTime(w.renewedAt),
        leaseTransitions: w.transitions,
      },
    };
  }
}

function recordOf(lease: Lease): ClaimRecord {
  const s = lease.spec ?? {};
  const a = lease.metadata.annotations ?? {};
  return {
    holder: s.holderIdentity ?? '',
    host: a[HOST] ?? '',
    pid: Number(a[PID] ?? 0),
    ...(a[URL_ANNOTATION] ? { url: a[URL_ANNOTATION] } : {}),
    acquiredAt: s.acquireTime ?? new Date(0).toISOString(),
    renewedAt: s.renewTime ?? new Date(0).toISOString(),
    durationMs: (s.leaseDurationSeconds ?? 15) * 1000,
    transitions: s.leaseTransitions ?? 0,
    version: String(lease.metadata.resourceVersion ?? ''),
  };
}

/** Kubernetes MicroTime: RFC 3339 with exactly six fractional digits. */
function microTime(iso: string): string {
  return new Date(iso).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}
