/**
 * Environment-level policy checks, run by render (pure: the policy is data given to it): may this environment use
 * its target, its cluster, a kubeconfig path, its namespace? Each violation names the field it is at and the rule.
 */
import type { KubernetesTargetSpec, TargetSpec } from '../core/model.js';
import { matchesAny, policyFor, serviceAccountUser, type EnginePolicy, type TargetKind } from './policy.js';

export interface TargetInput {
  local?: Record<string, never>;
  kubernetes?: { namespace: string; kubeconfig?: string; context?: string; cluster?: string };
}

export interface PolicyViolation {
  /** Path of the offending field, from the document root. */
  path: (string | number)[];
  /** `key` when the field's name is the offence (a target kind), else its value. */
  anchor: 'key' | 'value';
  message: string;
}

/**
 * The target spec an environment runs with, the engine's cluster (kubeconfig, context) and identity filled in, and
 * the policy violations of its `spec.target`.
 */
export function checkTarget(policy: EnginePolicy, env: string, target: TargetInput): { target: TargetSpec; violations: PolicyViolation[] } {
  const rule = policyFor(policy, env);
  const violations: PolicyViolation[] = [];
  const refuse = (path: (string | number)[], what: string, anchor: 'key' | 'value' = 'value') =>
    violations.push({ path: ['spec', 'target', ...path], anchor, message: `refused by ${rule.label}: ${what}` });
  const kind: TargetKind = target.kubernetes !== undefined ? 'kubernetes' : 'local';
  if (!rule.targets.includes(kind)) {
    const allowed = rule.targets.length ? `allowed: ${rule.targets.join(', ')}` : 'no target is allowed';
    refuse([kind], `environment "${env}" may not use the ${kind} target (${allowed})`, 'key');
  }
  const k = target.kubernetes;
  if (!k) return { target: { local: {} }, violations };

  const spec: KubernetesTargetSpec['kubernetes'] = { namespace: k.namespace };
  if (k.cluster !== undefined) {
    const cluster = policy.clusters[k.cluster];
    const names = Object.keys(policy.clusters);
    if (!cluster) {
      violations.push({
        path: ['spec', 'target', 'kubernetes', 'cluster'],
        anchor: 'value',
        message: `no cluster named "${k.cluster}" in the engine's configuration (${names.length ? `clusters: ${names.join(', ')}` : 'it names no clusters: add them under `clusters:` in keelson.yaml'})`,
      });
    } else {
      if (cluster.kubeconfig) spec.kubeconfig = cluster.kubeconfig;
      if (cluster.context) spec.context = cluster.context;
    }
    spec.cluster = k.cluster;
    if (rule.clusters && !matchesAny(rule.clusters, k.cluster)) refuse(['kubernetes', 'cluster'], `environment "${env}" may not use cluster "${k.cluster}" (allowed: ${rule.clusters.join(', ') || 'none'})`);
  } else {
    if (k.kubeconfig !== undefined) spec.kubeconfig = k.kubeconfig;
    if (k.context !== undefined) spec.context = k.context;
    if (!rule.allowKubeconfigPaths && k.kubeconfig !== undefined) {
      refuse(['kubernetes', 'kubeconfig'], `environment "${env}" may not name a kubeconfig file on the engine's host; refer to a cluster of the engine's configuration instead (target.kubernetes.cluster${clusterHint(policy)})`);
    } else if (!rule.allowKubeconfigPaths && k.context !== undefined) {
      refuse(['kubernetes', 'context'], `environment "${env}" may not pick a context of the engine's kubeconfig; refer to a cluster of the engine's configuration instead (target.kubernetes.cluster${clusterHint(policy)})`);
    } else if (rule.clusters && k.kubeconfig === undefined) {
      refuse(['kubernetes'], `environment "${env}" must name its cluster (target.kubernetes.cluster; allowed: ${rule.clusters.join(', ')})`, 'key');
    }
  }
  if (rule.namespaces && !matchesAny(rule.namespaces, k.namespace)) {
    refuse(['kubernetes', 'namespace'], `environment "${env}" may not use namespace "${k.namespace}" (allowed: ${rule.namespaces.join(', ')})`);
  }
  if (rule.serviceAccount) spec.impersonate = serviceAccountUser(rule.serviceAccount);
  if (policy.configured) {
    spec.policy = { rule: rule.label, kinds: rule.kinds, allowClusterScoped: rule.allowClusterScoped };
    if (rule.namespaces) spec.policy.namespaces = rule.namespaces;
  }
  return { target: { kubernetes: spec }, violations };
}

function clusterHint(policy: EnginePolicy): string {
  const names = Object.keys(policy.clusters);
  return names.length ? `: ${names.join(', ')}` : '';
}
