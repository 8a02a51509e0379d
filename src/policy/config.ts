/**
 * `clusters:` and `policy:` of the engine configuration (keelson.yaml), validated: a mistake in the operator's policy
 * stops `keelson up` with the key that is wrong, rather than running with a policy that is not the one written.
 */
import { z } from 'zod';
import { makePolicy, TARGET_KINDS, unrestrictedPolicy, type EnginePolicy } from './policy.js';

const Pattern = z.string().min(1);
const K8sName = z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, { error: 'must be a Kubernetes name' });

const ClusterSchema = z.strictObject({
  kubeconfig: z.string().min(1).optional(),
  context: z.string().min(1).optional(),
});

const RuleFields = {
  targets: z.array(z.enum(TARGET_KINDS as [string, ...string[]])).optional(),
  clusters: z.array(Pattern).optional(),
  allowKubeconfigPaths: z.boolean().optional(),
  namespaces: z.array(Pattern).optional(),
  kinds: z.strictObject({ allow: z.array(Pattern).optional(), deny: z.array(Pattern).optional() }).optional(),
  serviceAccount: z.strictObject({ name: K8sName, namespace: K8sName }).optional(),
  runAs: z.string().min(1).optional(),
};

const PolicySchema = z.strictObject({
  rules: z.array(z.strictObject({ environments: z.array(Pattern).min(1), ...RuleFields })).default([]),
  default: z.strictObject(RuleFields).optional(),
});

export const EngineConfigPolicySchema = z.object({
  clusters: z.record(z.string().min(1), ClusterSchema).optional(),
  policy: PolicySchema.optional(),
});

/** The policy of a parsed configuration file; `file` names it in errors. Throws an Error with `file: key: problem`. */
export function policyFromConfig(raw: Record<string, unknown>, file: string): EnginePolicy {
  const parsed = EngineConfigPolicySchema.safeParse({ clusters: raw.clusters ?? undefined, policy: raw.policy ?? undefined });
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new Error(`${file}: ${i.path.map(String).join('.') || '(top level)'}: ${i.message}`);
  }
  const { clusters = {}, policy } = parsed.data;
  if (!policy) return unrestrictedPolicy(clusters);
  const check = (names: string[] | undefined, where: string) => {
    for (const n of names ?? []) {
      if (!n.includes('*') && !n.includes('?') && !(n in clusters)) throw new Error(`${file}: ${where}: no cluster named "${n}" under clusters: (${Object.keys(clusters).join(', ') || 'none'})`);
    }
  };
  policy.rules.forEach((r, i) => check(r.clusters, `policy.rules.${i}.clusters`));
  check(policy.default?.clusters, 'policy.default.clusters');
  return makePolicy(policy.rules as Parameters<typeof makePolicy>[0], policy.default as Parameters<typeof makePolicy>[1], clusters);
}
