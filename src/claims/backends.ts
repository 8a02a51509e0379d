/**
 * Which backend keeps an environment's claim: a Lease in the namespace of a Kubernetes environment, a file in the
 * host's claims dir for a local one. The Kubernetes client loads on first use only.
 */
import { createHash } from 'node:crypto';
import type { TargetSpec } from '../core/model.js';
import { claimDefaults, requestTimeout, type ClaimBackend, type ClaimRecord, type ClaimTimings, type ClaimWrite } from './claim.js';
import { FileClaims } from './file-claims.js';

/**
 * `scope`: the ops repository (as `keelson status` shows it) and the path in it. Local claims are per ops repository:
 * engines of one host on two different ops repositories that both name an environment `dev` run two environments.
 * (A Kubernetes environment's Lease is per namespace: two ops repositories deploying to one namespace do contend.)
 */
export function claimBackends(o: { claimsDir: string; scope: () => { repo: string; path: string }; specOf: (env: string) => TargetSpec | undefined; timings?: ClaimTimings }): (env: string) => ClaimBackend {
  const timeoutMs = requestTimeout(o.timings ?? claimDefaults);
  let files: FileClaims | undefined;
  return (env) => {
    const spec = o.specOf(env);
    if (spec && 'kubernetes' in spec) return new LazyLease(env, spec.kubernetes, timeoutMs);
    files ??= new FileClaims(o.claimsDir, repoScope(o.scope()));
    return files;
  };
}

/** 12 hex digits naming an ops repository (and path in it) in claim file names. */
export function repoScope(s: { repo: string; path: string }): string {
  return createHash('sha256').update(`${s.repo}\0${s.path || '.'}`).digest('hex').slice(0, 12);
}

class LazyLease implements ClaimBackend {
  readonly clockSkewMs = 60_000;
  readonly where: string;
  private inner?: Promise<{ backend: ClaimBackend; release: () => void }>;

  constructor(
    private readonly env: string,
    private readonly spec: { namespace: string; kubeconfig?: string; context?: string },
    private readonly timeoutMs: number,
  ) {
    this.where = `Lease ${spec.namespace}/keelson-env-${env}`;
  }

  private get(): Promise<ClaimBackend> {
    this.inner ??= (async () => {
      const [{ connect }, { LeaseClaims }] = await Promise.all([import('../targets/kubernetes/client.js'), import('./lease-claims.js')]);
      const cluster = connect(this.spec);
      return { backend: new LeaseClaims(cluster.api, this.spec.namespace, this.env, this.timeoutMs), release: () => cluster.release() };
    })();
    this.inner.catch(() => (this.inner = undefined));
    return this.inner.then((i) => i.backend);
  }

  async read(env: string): Promise<ClaimRecord | undefined> {
    return (await this.get()).read(env);
  }

  async write(env: string, current: ClaimRecord | undefined, next: ClaimWrite, mode: 'renew' | 'take'): Promise<ClaimRecord | undefined> {
    return (await this.get()).write(env, current, next, mode);
  }

  async release(env: string, current: ClaimRecord): Promise<void> {
    return (await this.get()).release(env, current);
  }

  close(): void {
    void this.inner?.then((i) => i.release(), () => {});
  }
}
