/**
 * The engine operator's policy: what each environment of the ops repository may do. It comes from the engine's
 * configuration (`keelson.yaml`: `clusters:` and `policy:`), never from git, so a commit cannot widen it.
 *
 * Pure: matching (globs, first match wins, the default rule) and the environment-level checks that render runs
 * (target, cluster, kubeconfig path, namespace). Object-level checks (namespaces, kinds) are in `objects.ts`.
 */

export type TargetKind = 'local' | 'kubernetes';
export const TARGET_KINDS: readonly TargetKind[] = ['local', 'kubernetes'];

/** A cluster the engine configuration names; the ops repository refers to it as `target.kubernetes.cluster`. */
export interface ClusterConfig {
  kubeconfig?: string;
  context?: string;
}

export interface ServiceAccountRef {
  name: string;
  namespace: string;
}

export interface KindRules {
  allow?: string[];
  deny?: string[];
}

/** One rule as written (the default rule has no `environments`). Absent fields: see docs/security.md. */
export interface PolicyRuleConfig {
  environments?: string[];
  targets?: TargetKind[];
  clusters?: string[];
  allowKubeconfigPaths?: boolean;
  namespaces?: string[];
  kinds?: KindRules;
  serviceAccount?: ServiceAccountRef;
  runAs?: string;
}

/** A rule with every field decided, and the label that error messages name it by. */
export interface PolicyRule {
  /** `policy rule #2 (environments: prod-*)` or `the default policy rule`. */
  label: string;
  environments: string[];
  targets: TargetKind[];
  /** Names of configured clusters (globs); undefined: any configured cluster. */
  clusters?: string[];
  allowKubeconfigPaths: boolean;
  /** Namespaces objects may be in (globs); undefined: any. */
  namespaces?: string[];
  kinds: KindRules;
  /** Cluster-scoped kinds are allowed only by `kinds.allow`, unless this is set (no policy configured). */
  allowClusterScoped: boolean;
  serviceAccount?: ServiceAccountRef;
  runAs?: string;
}

export interface EnginePolicy {
  /** False when the configuration has no `policy:`: every environment may do what it could before policies. */
  configured: boolean;
  clusters: Record<string, ClusterConfig>;
  rules: PolicyRule[];
  default: PolicyRule;
}

/** What applies to objects of a Kubernetes environment: carried in its target spec to `KubernetesTarget.prepare`. */
export interface ObjectPolicy {
  rule: string;
  namespaces?: string[];
  kinds: KindRules;
  allowClusterScoped: boolean;
}

/** No `policy:` configured: what Keelson allowed before policies existed. */
export const UNRESTRICTED: PolicyRule = {
  label: 'the default policy rule (no policy configured)',
  environments: ['*'],
  targets: [...TARGET_KINDS],
  allowKubeconfigPaths: true,
  kinds: {},
  allowClusterScoped: true,
};

export function unrestrictedPolicy(clusters: Record<string, ClusterConfig> = {}): EnginePolicy {
  return { configured: false, clusters, rules: [], default: UNRESTRICTED };
}

/** The rule of a configured policy, with the defaults of absent fields. */
export function ruleOf(c: PolicyRuleConfig, label: string): PolicyRule {
  const r: PolicyRule = {
    label,
    environments: c.environments ?? ['*'],
    targets: c.targets ?? [...TARGET_KINDS],
    allowKubeconfigPaths: c.allowKubeconfigPaths ?? false,
    kinds: c.kinds ?? {},
    allowClusterScoped: false,
  };
  if (c.clusters) r.clusters = c.clusters;
  if (c.namespaces) r.namespaces = c.namespaces;
  if (c.serviceAccount) r.serviceAccount = c.serviceAccount;
  if (c.runAs) r.runAs = c.runAs;
  return r;
}

/** A configured policy from its rules (in order) and default rule; no default rule refuses every target. */
export function makePolicy(rules: PolicyRuleConfig[], dflt: PolicyRuleConfig | undefined, clusters: Record<string, ClusterConfig> = {}): EnginePolicy {
  return {
    configured: true,
    clusters,
    rules: rules.map((r, i) => ruleOf(r, `policy rule #${i + 1} (environments: ${(r.environments ?? ['*']).join(', ')})`)),
    default: dflt ? ruleOf(dflt, 'the default policy rule') : { ...ruleOf({ targets: [] }, 'the default policy rule (none configured: refuses every target)') },
  };
}

/** `*` any run of characters, `?` one character; everything else literal. */
export function globMatch(pattern: string, s: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  return re.test(s);
}

export function matchesAny(patterns: readonly string[], s: string): boolean {
  return patterns.some((p) => globMatch(p, s));
}

/** The rule that governs environment `env`: the first whose `environments` match, else the default rule. */
export function policyFor(policy: EnginePolicy, env: string): PolicyRule {
  return policy.rules.find((r) => matchesAny(r.environments, env)) ?? policy.default;
}

/** One line per rule, for the engine's start-up log. */
export function describePolicy(policy: EnginePolicy): string[] {
  if (!policy.configured) {
    return ['no policy configured: every environment may use every target, any kubeconfig path on this host, any namespace and any kind (cluster-scoped too) the engine\'s credentials allow; see docs/security.md'];
  }
  return [...policy.rules, policy.default].map((r) => `${r.label}: ${describeRule(r)}`);
}

function describeRule(r: PolicyRule): string {
  if (r.targets.length === 0) return 'refused (no target allowed)';
  const parts = [`targets ${r.targets.join(', ')}`];
  if (r.targets.includes('kubernetes')) {
    parts.push(`clusters ${r.clusters?.join(', ') ?? 'any configured'}`);
    parts.push(r.allowKubeconfigPaths ? 'kubeconfig paths allowed' : 'no kubeconfig paths');
    parts.push(`namespaces ${r.namespaces?.join(', ') ?? 'any'}`);
    if (r.kinds.allow?.length) parts.push(`kinds allowed ${r.kinds.allow.join(', ')}`);
    if (r.kinds.deny?.length) parts.push(`kinds denied ${r.kinds.deny.join(', ')}`);
    if (!r.allowClusterScoped) parts.push('cluster-scoped kinds only as allowed');
    parts.push(r.serviceAccount ? `as service account ${r.serviceAccount.namespace}/${r.serviceAccount.name}` : "as the engine's own identity");
  }
  if (r.targets.includes('local')) parts.push(r.runAs ? `local apps run as ${r.runAs}` : "local apps run as the engine's user");
  return parts.join('; ');
}

/** The Kubernetes user name of a service account, as impersonated (`Impersonate-User`). */
export function serviceAccountUser(sa: ServiceAccountRef): string {
  return `system:serviceaccount:${sa.namespace}:${sa.name}`;
}
