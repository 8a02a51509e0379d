/**
 * Object-level policy checks: may an environment's app write this object (its namespace, its kind)? Run where objects
 * are rendered (`KubernetesTarget.prepare`), before anything is applied. Pure.
 */
import { globMatch, type ObjectPolicy } from './policy.js';

export interface CheckedObject {
  apiVersion: string;
  kind: string;
  metadata: { name?: string; namespace?: string };
}

/** Why `policy` refuses the object, or undefined when it may be written. `namespaced`: the kind's scope. */
export function objectViolation(policy: ObjectPolicy, o: CheckedObject, namespaced: boolean): string | undefined {
  const group = o.apiVersion.includes('/') ? o.apiVersion.split('/')[0] : '';
  const name = group ? `${o.kind} (${group})` : o.kind;
  const refuse = (why: string) => `refused by ${policy.rule}: ${why}`;
  if (kindMatches(policy.kinds.deny, group, o.kind)) return refuse(`kind ${name} is denied (kinds.deny: ${policy.kinds.deny!.join(', ')})`);
  if (!namespaced) {
    // Globs never allow a cluster-scoped kind: it must be named (`ClusterRole`, `rbac.authorization.k8s.io/ClusterRole`).
    if (!policy.allowClusterScoped && !kindMatches(policy.kinds.allow, group, o.kind, true)) {
      return refuse(`kind ${name} is cluster-scoped and not allowed (cluster-scoped kinds must be named in kinds.allow)`);
    }
    const created = o.metadata.name;
    if (o.kind === 'Namespace' && group === '' && policy.namespaces && created && !policy.namespaces.some((p) => globMatch(p, created))) {
      return refuse(`namespace "${created}" is not allowed (namespaces: ${policy.namespaces.join(', ')})`);
    }
    return undefined;
  }
  if (policy.kinds.allow !== undefined && !kindMatches(policy.kinds.allow, group, o.kind)) return refuse(`kind ${name} is not allowed (kinds.allow: ${policy.kinds.allow.join(', ')})`);
  const ns = o.metadata.namespace;
  if (policy.namespaces && ns !== undefined && !policy.namespaces.some((p) => globMatch(p, ns))) {
    return refuse(`namespace "${ns}" is not allowed (namespaces: ${policy.namespaces.join(', ')})`);
  }
  return undefined;
}

/**
 * `Kind` matches the kind in any group; `group/Kind` both (`core/Kind` or `/Kind`: the core group). Globs, but with
 * `exactKind` the kind part must be written out (no `*` or `?`).
 */
export function kindMatches(patterns: readonly string[] | undefined, group: string, kind: string, exactKind = false): boolean {
  return (patterns ?? []).some((p) => {
    const slash = p.indexOf('/');
    const k = slash < 0 ? p : p.slice(slash + 1);
    if (exactKind ? k !== kind : !globMatch(k, kind)) return false;
    if (slash < 0) return true;
    const g = p.slice(0, slash);
    return g === 'core' || g === '' ? group === '' : globMatch(g, group);
  });
}
