/**
 * Members in a cluster: a `coordination.k8s.io/v1` Lease `keelson-member-<hash>` per engine in the membership
 * namespace, labelled `keelson.dev/member=true`; `holderIdentity` is the engine's identity, `renewTime` its last
 * renewal. Only its engine writes a member Lease, so writes need no compare-and-swap.
 */
import { isNotFound, type KubeClient } from '../targets/kubernetes/client.js';
import { LABEL_MANAGED_BY, type KObject } from '../targets/kubernetes/objects.js';
import { memberKey, type MemberBackend, type MemberRecord } from './members.js';

const MEMBER_LABEL = 'keelson.dev/member';
const timeout = () => AbortSignal.timeout(5_000);

export function memberLeaseName(id: string): string {
  return `keelson-member-${memberKey(id)}`;
}

interface Lease extends KObject {
  spec?: { holderIdentity?: string; leaseDurationSeconds?: number; renewTime?: string };
}

export class LeaseMembers implements MemberBackend {
  readonly where: string;

  constructor(
    private readonly api: KubeClient,
    private readonly namespace: string,
  ) {
    this.where = `Leases ${namespace}/keelson-member-*`;
  }

  private collection(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(this.namespace)}/leases`;
  }

  async announce(id: string, durationMs: number): Promise<void> {
    const name = memberLeaseName(id);
    const lease: Lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name, namespace: this.namespace, labels: { [LABEL_MANAGED_BY]: 'keelson', [MEMBER_LABEL]: 'true' } },
      spec: { holderIdentity: id, leaseDurationSeconds: Math.max(1, Math.ceil(durationMs / 1000)), renewTime: new Date().toISOString().replace(/\.(\d{3})Z$/, '.$1000Z') },
    };
    const path = `${this.collection()}/${name}`;
    let current: Lease | undefined;
    try {
      current = await this.api.request<Lease>('GET', path, { signal: timeout() });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (!current) return void (await this.api.request('POST', this.collection(), { body: lease, signal: timeout() }));
    lease.metadata.resourceVersion = current.metadata.resourceVersion;
    await this.api.request('PUT', path, { body: lease, signal: timeout() });
  }

  async list(): Promise<MemberRecord[]> {
    const { items } = await this.api.listPath(this.collection(), `${MEMBER_LABEL}=true`);
    return (items as Lease[])
      .filter((l) => l.spec?.holderIdentity && l.spec.renewTime)
      .map((l) => ({ id: l.spec!.holderIdentity!, renewedAt: l.spec!.renewTime!, durationMs: (l.spec!.leaseDurationSeconds ?? 15) * 1000, version: String(l.metadata.resourceVersion ?? l.spec!.renewTime) }));
  }

  async leave(id: string): Promise<void> {
    await this.api.request('DELETE', `${this.collection()}/${memberLeaseName(id)}`, { signal: timeout() }).catch((err) => {
      if (!isNotFound(err)) throw err;
    });
  }
}
