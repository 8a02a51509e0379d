/**
 * Where the engines announce themselves (members.ts): member Leases in a namespace when one is given
 * (`--membership-namespace`, `KEELSON_MEMBERSHIP_NAMESPACE`, or the pod's own namespace when the engine runs in one);
 * member files in the claims dir of the host otherwise (`--shard`). The Kubernetes client loads only when needed.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileMembers, type MemberBackend } from './members.js';

/** Member Leases in `namespace` when given, member files in the claims dir of the host otherwise. */
export async function memberBackend(o: { namespace?: string; claimsDir: string; scope: string }): Promise<MemberBackend> {
  const namespace = o.namespace;
  if (!namespace) return new FileMembers(o.claimsDir, o.scope);
  const [{ connect }, { LeaseMembers }] = await Promise.all([import('../targets/kubernetes/client.js'), import('./lease-members.js')]);
  const cluster = connect({});
  const backend = new LeaseMembers(cluster.api, namespace);
  return Object.assign(backend, { close: () => cluster.release() });
}

/** The pod's namespace, when the engine runs in one (the service account's `namespace` file). */
export function podNamespace(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (!env.KUBERNETES_SERVICE_HOST) return undefined;
  const file = join(env.KEELSON_SERVICEACCOUNT_DIR || '/var/run/secrets/kubernetes.io/serviceaccount', 'namespace');
  try {
    return existsSync(file) ? readFileSync(file, 'utf8').trim() || undefined : undefined;
  } catch {
    return undefined;
  }
}
