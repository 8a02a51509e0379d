/**
 * Where the engines announce themselves (members.ts): member Leases in a namespace when one is given
 * (`--membership-namespace`, `KEELSON_MEMBERSHIP_NAMESPACE`) or when the engine runs in a pod (its service account's
 * namespace); member files in the claims dir of the host otherwise. The Kubernetes client loads only when needed.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileMembers, type MemberBackend } from './members.js';

export async function memberBackend(o: { namespace?: string; claimsDir: string; scope: string; env?: NodeJS.ProcessEnv }): Promise<MemberBackend> {
  const namespace = o.namespace || podNamespace(o.env ?? process.env);
  if (!namespace) return new FileMembers(o.claimsDir, o.scope);
  const [{ connect }, { LeaseMembers }] = await Promise.all([import('../targets/kubernetes/client.js'), import('./lease-members.js')]);
  const cluster = connect({});
  const backend = new LeaseMembers(cluster.api, namespace);
  return Object.assign(backend, { close: () => cluster.release() });
}

/** The pod's namespace, when the engine runs in one (the service account's `namespace` file). */
function podNamespace(env: NodeJS.ProcessEnv): string | undefined {
  if (!env.KUBERNETES_SERVICE_HOST) return undefined;
  const file = join(env.KEELSON_SERVICEACCOUNT_DIR || '/var/run/secrets/kubernetes.io/serviceaccount', 'namespace');
  try {
    return existsSync(file) ? readFileSync(file, 'utf8').trim() || undefined : undefined;
  } catch {
    return undefined;
  }
}
