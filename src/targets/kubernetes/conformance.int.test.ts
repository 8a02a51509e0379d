import { kubectl, kubernetesUnavailable } from '../../../test/k8s.js';
import { describeTargetConformance } from '../conformance.js';
import { KubernetesTarget } from './kubernetes-target.js';

let target: KubernetesTarget;
const namespaceOf = (env: string) => env.slice(0, 63);

/** A manifests app: the form Argo CD users bring; never-ready = a node selector no kwok node matches. */
function deployment(name: string, v: { version: string; greeting: string; neverReady?: boolean }): string {
  return `apiVersion: apps/v1
kind: Deployment
metadata: { name: ${name} }
spec:
  replicas: 1
  progressDeadlineSeconds: 5
  selector: { matchLabels: { app: ${name} } }
  template:
    metadata: { labels: { app: ${name} } }
    spec:
      containers:
      - name: ${name}
        image: registry.example/${name}:${v.version}
        env: [{ name: GREETING, value: ${v.greeting} }]
${v.neverReady ? '      nodeSelector: { keelson.dev/never: "true" }\n' : ''}`;
}

describeTargetConformance({
  name: 'kubernetes',
  unavailable: kubernetesUnavailable,
  targetYaml: (env) => `{ kubernetes: { namespace: ${namespaceOf(env)} } }`,
  appFiles: (name, v) => ({
    [`apps/${name}.yaml`]: `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: ${name} }
spec:
  version: "${v.version}"
  manifests: ../manifests/${name}
  rollout: { progressDeadlineSeconds: 5 }
`,
    [`manifests/${name}/deployment.yaml`]: deployment(name, v),
    [`manifests/${name}/config.yaml`]: v.withKept
      ? `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}-kept\n  annotations: { argocd.argoproj.io/sync-options: Prune=false }\ndata: { a: b }\n`
      : `# the kept ConfigMap is no longer declared\n`,
  }),
  createTarget: async (ctx) => {
    target = new KubernetesTarget({ env: ctx.env, spec: { namespace: namespaceOf(ctx.env) }, store: ctx.store, bus: ctx.bus, log: ctx.log, requeue: ctx.requeue });
    return target;
  },
  fingerprint: async (env, app) =>
    kubectl('-n', namespaceOf(env), 'get', 'deployments,configmaps', '-l', `keelson.dev/app=${app}`, '-o', 'jsonpath={range .items[*]}{.metadata.name}={.metadata.resourceVersion} {end}'),
  drift: async (env, app) => {
    kubectl('-n', namespaceOf(env), 'scale', `deployment/${app}`, '--replicas=3');
  },
  healed: async (env, app) => kubectl('-n', namespaceOf(env), 'get', `deployment/${app}`, '-o', 'jsonpath={.spec.replicas}') === '1',
  keptExists: async (env, app) => kubectl('-n', namespaceOf(env), 'get', 'configmap', `${app}-kept`, '-o', 'name') === `configmap/${app}-kept`,
  cleanup: async (env) => {
    await target.close();
    kubectl('delete', 'namespace', namespaceOf(env), '--wait=false');
  },
});
