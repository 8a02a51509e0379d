/**
 * What an app applies, before anything is sent: its rendered objects (YAML, Kustomize, Jsonnet or a Helm chart) with
 * the secret object and injected env, blue/green and canary sets, namespaces filled in (the cluster's word on each
 * kind's scope), Keelson's ownership labels, the operator's policy checked, Helm test and pre-delete hooks apart, and
 * hooks split from the resources. Refuses an object declared twice or owned by another app of the environment.
 */
import { TerminalError } from '../../core/errors.js';
import type { DesiredApp, KubernetesTargetSpec } from '../../core/model.js';
import type { ObjectPolicy } from '../../policy/policy.js';
import { objectViolation } from '../../policy/objects.js';
import { isTransient, type Cluster } from './client.js';
import type { Owner } from './drift-heal.js';
import { clusterCapabilities } from './helm.js';
import { translateHelmHooks } from './helm-hooks.js';
import { hookPhasesOf, isGeneratedHook, splitHooks } from './hooks.js';
import { formatKey, identity, refOf, withOwnership, type KObject } from './objects.js';
import { asSets } from './progressive.js';
import { renderApp } from './render.js';
import { injectSecrets, isSecret, secretObject, withoutData } from './secrets.js';

export interface Prepared {
  resources: KObject[];
  hooks: ReturnType<typeof splitHooks>['hooks'];
  /** A Helm chart's test hooks (`keelson test`, `spec.helm.tests: afterSync`). */
  tests: KObject[];
  /** A Helm chart's pre-delete hooks, recorded with the inventory and run when the app is removed. */
  preDelete: KObject[];
}


export interface PrepareContext {
  cluster: Cluster;
  /** The app has no inventory record here: Helm's install hooks, not upgrade's. */
  install: boolean;
  env: string;
  /** The environment's namespace: namespaced objects without one go into it. */
  namespace: string;
  spec: KubernetesTargetSpec['kubernetes'];
  chartCacheDir?: string;
  /** Which app of the environment owns a live object (by identity), if any. */
  ownerOf: (id: string) => Owner | undefined;
}

const CLUSTER_SCOPED = new Set(['Namespace', 'CustomResourceDefinition', 'ClusterRole', 'ClusterRoleBinding', 'PersistentVolume', 'StorageClass', 'PriorityClass', 'IngressClass']);

export async function prepareApp(app: DesiredApp, checkoutDir: string, c: PrepareContext): Promise<Prepared> {
  const { cluster, install } = c;
  // What a Helm chart needs of the cluster (helm.ts); discovery that is refused leaves Helm's default capabilities.
  const capabilities = app.manifests || app.helm?.chart ? await clusterCapabilities(cluster.api).catch((err) => { if (isTransient(err)) throw err; return undefined; }) : undefined;
  const helm = { namespace: c.namespace, install, capabilities, chartCacheDir: c.chartCacheDir, lookup: { kubeconfig: c.spec.kubeconfig ?? process.env.KUBECONFIG, context: c.spec.context, ...(c.spec.impersonate ? { asUser: c.spec.impersonate } : {}) } };
  const phased = translateHelmHooks(await renderApp(app, checkoutDir, helm), { install });
  let rendered = phased.objects;
  const secret = await secretObject(app, checkoutDir);
  if (secret) rendered = [secret, ...rendered.map((o) => injectSecrets(o, app))];
  rendered = asSets(app, rendered); // blue/green and canary: one Deployment per pod template (progressive.ts)
  const crdScopes = new Map<string, string>();
  for (const o of rendered) {
    if (o.kind !== 'CustomResourceDefinition') continue;
    const spec = (o as { spec?: any }).spec;
    for (const v of spec?.versions ?? []) crdScopes.set(`${spec.group}/${v.name}/${spec.names?.kind}`, spec.scope);
  }
  const place = async (o: KObject): Promise<KObject> => {
    const obj = structuredClone(o);
    if (!obj.metadata.namespace && (await isNamespaced(cluster, obj, crdScopes))) obj.metadata.namespace = c.namespace;
    if (isSecret(obj)) {
      // The applied hash covers the Secret without its values (the engine's digests change it instead). `stringData`
      // goes into `data` as the API server would write it: live Secrets have only `data`, so a desired one with
      // `stringData` would never match live, and the app would be applied again at every reconcile.
      const { data, stringData } = withStringDataInData(obj as { data?: unknown; stringData?: unknown });
      return { ...withOwnership(withoutData(obj), app.env, app.name), ...(data !== undefined ? { data } : {}), ...(stringData !== undefined ? { stringData } : {}) };
    }
    return withOwnership(obj, app.env, app.name);
  };
  const out: KObject[] = [];
  for (const o of rendered) out.push(await place(o));
  const tests: KObject[] = [];
  for (const o of phased.tests) tests.push(await place(o));
  const preDelete: KObject[] = [];
  for (const o of phased.preDelete) preDelete.push(await place(o));
  if (c.spec.policy) await checkPolicy(cluster, app, [...out, ...tests, ...preDelete], crdScopes, c.spec.policy);
  const seen = new Map<string, string>();
  for (const o of out) {
    // Runs of a generated hook are new objects each time: one per phase, generateName and kind.
    const generated = isGeneratedHook(o);
    if (generated && hookPhasesOf(o).length === 0) {
      throw new TerminalError(`${formatKey(o)} of app ${app.name} has metadata.generateName and no name; only hooks (argocd.argoproj.io/hook, helm.sh/hook) may, every other object needs metadata.name`);
    }
    const id = generated ? `hook ${hookPhasesOf(o).join(',')} ${identity(o)}` : identity(o);
    if (seen.has(id)) throw new TerminalError(`app ${app.name} declares ${formatKey(o)}${generated ? ` (generateName hook, ${hookPhasesOf(o).join(',')})` : ''} twice`);
    seen.set(id, app.name);
    if (generated) continue;
    const owner = c.ownerOf(id);
    if (owner && owner.app !== app.name) throw new TerminalError(`${formatKey(o)} of app ${app.name} is already managed by app ${owner.app} in environment ${c.env}`);
  }
  return { ...splitHooks(out), tests, preDelete };
}

/** The engine operator's policy on namespaces and kinds: one refused object refuses the app (nothing applied). */
async function checkPolicy(cluster: Cluster, app: DesiredApp, objects: KObject[], crdScopes: Map<string, string>, policy: ObjectPolicy): Promise<void> {
  for (const o of objects) {
    // The server's word on a kind's scope first: a CRD the app declares may not redefine a served kind's scope.
    const served = await cluster.api.resourceOf(o.apiVersion, o.kind).catch((err) => {
      if (isTransient(err)) throw err;
      return undefined;
    });
    const why = objectViolation(policy, o, served ? served.namespaced : await isNamespaced(cluster, o, crdScopes));
    if (why) throw new TerminalError(`${formatKey(o)} of app ${app.name} (${app.source.file}:${app.source.line}:${app.source.col}): ${why}; nothing of app ${app.name} was applied`);
  }
}

async function isNamespaced(cluster: Cluster, o: KObject, crdScopes: Map<string, string>): Promise<boolean> {
  if (CLUSTER_SCOPED.has(o.kind)) return false;
  const scope = crdScopes.get(`${o.apiVersion}/${o.kind}`);
  if (scope) return scope === 'Namespaced';
  const r = await cluster.api.resourceOf(o.apiVersion, o.kind).catch((err) => {
    if (isTransient(err)) throw err;
    return undefined;
  });
  if (!r) throw new TerminalError(`${o.kind} (${o.apiVersion}) ${refOf(o).name}: the cluster does not serve this kind; is its CustomResourceDefinition installed?`);
  return r.namespaced;
}

/** A Secret's values as the API server keeps them: `stringData` entries base64-encoded into `data` (they win). */
function withStringDataInData(o: { data?: unknown; stringData?: unknown }): { data?: unknown; stringData?: unknown } {
  const isMap = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (o.stringData === undefined || !isMap(o.stringData) || (o.data !== undefined && !isMap(o.data))) return { data: o.data, stringData: o.stringData }; // the server says what is wrong
  const encoded = Object.entries(o.stringData).map(([k, v]) => [k, Buffer.from(String(v), 'utf8').toString('base64')]);
  return { data: { ...(o.data as Record<string, unknown> | undefined), ...Object.fromEntries(encoded) } };
}
