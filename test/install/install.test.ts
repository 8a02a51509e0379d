/**
 * Installing Keelson in a cluster: the Helm chart (deploy/helm/keelson) and the kustomize base (deploy/kubernetes)
 * render, lint and pass the API server's validation (server-side dry-run); and the engine, started the way the image
 * starts it (`node bin/keelson up`, the chart's environment) with only the in-cluster identity the chart grants (a
 * service-account token from the TokenRequest API, the cluster's CA, KUBERNETES_SERVICE_HOST/PORT), deploys an app
 * from an ops repository, with no request refused, while a kind outside the chart's RBAC is refused.
 *
 * The image is not built here (a build takes minutes and needs its base image): with KEELSON_INSTALL_IMAGE set to
 * an image built from the Containerfile, the engine is that image, run by buildah; see README, "Installing Keelson
 * in a cluster". DEBUG_INSTALL=1 prints the engine's log.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { bin, commitAll, freePort, gitInit, root, tempDir, waitFor, writeTree } from '../helpers.js';
import { kubectl, kubectlWithInput, kubernetesSuite, uniqueNamespace } from '../k8s.js';

const chart = join(root, 'deploy', 'helm', 'keelson');
const base = join(root, 'deploy', 'kubernetes');
type Doc = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; [k: string]: any };

/** The Helm binary of scripts/tools.sh (KEELSON_HELM_BIN); a missing one fails the suite in CI. */
function helmBin(): string | undefined {
  const b = process.env.KEELSON_HELM_BIN;
  return b && existsSync(b) ? b : undefined;
}

function helm(...args: string[]): { code: number; out: string } {
  const r = spawnSync(helmBin()!, args, { encoding: 'utf8', env: { ...process.env, HELM_CACHE_HOME: join(tmp.dir, 'helm-cache'), HELM_CONFIG_HOME: join(tmp.dir, 'helm-config'), HELM_DATA_HOME: join(tmp.dir, 'helm-data') } });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

function docs(text: string): Doc[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as Doc)
    .filter(Boolean);
}

function template(release: string, namespace: string, ...set: string[]): Doc[] {
  const r = helm('template', release, chart, '--namespace', namespace, ...set.flatMap((s) => ['--set', s]));
  if (r.code !== 0) throw new Error(`helm template failed: ${r.out}`);
  return docs(r.out);
}

/**
 * An image built from the Containerfile (`KEELSON_INSTALL_IMAGE`, in buildah's local storage; see
 * test/install/offline-base-image.sh): the in-cluster test then runs the image itself instead of its entrypoint.
 */
const image = process.env.KEELSON_INSTALL_IMAGE || undefined;
const buildah = (...args: string[]) => execFileSync('buildah', args, { encoding: 'utf8' }).trim();

const find = (all: Doc[], kind: string, name?: string) => all.find((d) => d.kind === kind && (!name || d.metadata.name === name));
const tmp = tempDir('keelson-install-');
afterAll(() => tmp.cleanup());

kubernetesSuite('installing Keelson in a cluster', () => {
  describe('the Helm chart', () => {
    beforeAll(() => {
      if (!helmBin()) throw new Error('KEELSON_HELM_BIN is not set: run `eval "$(scripts/tools.sh env)"` (scripts/test.sh does)');
    });

    it('lints, and says which value is missing when the ops repository is not given', () => {
      const ok = helm('lint', chart, '--set', 'repo.url=https://git.example.com/ops.git');
      expect(ok.out).toContain('1 chart(s) linted, 0 chart(s) failed');
      const missing = helm('template', 'keelson', chart);
      expect(missing.code).not.toBe(0);
      expect(missing.out).toContain('repo.url is required');
    });

    it('renders one engine that listens beyond loopback with tokens and a webhook secret from Secrets, locked down', () => {
      const all = template('keelson', 'keelson-system', 'repo.url=https://git.example.com/ops.git', 'repo.envs={prod,staging}');
      const dep = find(all, 'Deployment', 'keelson')!;
      expect(dep.spec.replicas).toBe(1);
      expect(dep.spec.strategy).toEqual({ type: 'Recreate' });
      const pod = dep.spec.template.spec;
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001, seccompProfile: { type: 'RuntimeDefault' } });
      const c = pod.containers[0];
      expect(c.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
      const env = Object.fromEntries(c.env.map((e: any) => [e.name, e.value ?? e.valueFrom]));
      expect(env).toMatchObject({
        KEELSON_REPO: 'https://git.example.com/ops.git',
        KEELSON_ENVS: 'prod,staging',
        KEELSON_LISTEN: '0.0.0.0:7070',
        POD_IP: { fieldRef: { fieldPath: 'status.podIP' } },
        KEELSON_TOKEN_ADMIN: { secretKeyRef: { name: 'keelson-auth', key: 'admin-token' } },
        KEELSON_WEBHOOK_SECRET: { secretKeyRef: { name: 'keelson-auth', key: 'webhook-secret' } },
      });
      expect(c.volumeMounts.map((m: any) => m.mountPath).sort()).toEqual(['/tmp', '/var/lib/keelson']);
      expect(c.readinessProbe.httpGet.path).toBe('/healthz');
      expect(find(all, 'PersistentVolumeClaim', 'keelson-state')).toBeDefined();
      const secret = find(all, 'Secret', 'keelson-auth')!;
      expect(Buffer.from(secret.data['admin-token'], 'base64').toString()).toMatch(/^kls_[A-Za-z0-9]{43}$/);
      expect(find(all, 'Ingress')).toBeUndefined();
    });

    it('runs several sharded replicas: an emptyDir each instead of the PVC, rolled one by one, a PodDisruptionBudget on request', () => {
      const all = template('keelson', 'keelson-system', 'repo.url=https://git.example.com/ops.git', 'replicaCount=3', 'podDisruptionBudget.enabled=true');
      const dep = find(all, 'Deployment', 'keelson')!;
      expect(dep.spec.replicas).toBe(3);
      expect(dep.spec.strategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
      expect(dep.spec.template.spec.volumes.find((v: any) => v.name === 'state')).toEqual({ name: 'state', emptyDir: {} });
      expect(find(all, 'PersistentVolumeClaim')).toBeUndefined();
      const pdb = find(all, 'PodDisruptionBudget', 'keelson')!;
      expect(pdb.spec).toEqual({ maxUnavailable: 1, selector: { matchLabels: dep.spec.selector.matchLabels } });
      // Sharding needs the member Leases in the release's namespace.
      expect(find(all, 'Role', 'keelson-members')!.rules).toEqual([{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'list', 'create', 'update', 'delete'] }]);
      // One replica without persistence: an emptyDir too, and no budget (it could never be met).
      const single = template('keelson', 'keelson-system', 'repo.url=https://git.example.com/ops.git', 'persistence.enabled=false', 'podDisruptionBudget.enabled=true');
      expect(find(single, 'Deployment')!.spec.template.spec.volumes.find((v: any) => v.name === 'state')).toEqual({ name: 'state', emptyDir: {} });
      expect(find(single, 'PersistentVolumeClaim')).toBeUndefined();
      expect(find(single, 'PodDisruptionBudget')).toBeUndefined();
    });

    it('takes tokens and the webhook secret from existing Secrets, and opens an Ingress on request', () => {
      const all = template('keelson', 'keelson-system', 'repo.url=https://git.example.com/ops.git', 'auth.existingSecret=my-tokens', 'webhook.existingSecret=my-hook', 'ingress.enabled=true', 'ingress.webhookOnly=true', 'ingress.host=hooks.example.com');
      expect(find(all, 'Secret')).toBeUndefined();
      const c = find(all, 'Deployment')!.spec.template.spec.containers[0];
      const env = Object.fromEntries(c.env.map((e: any) => [e.name, e.value ?? e.valueFrom]));
      expect(env.KEELSON_TOKENS_FILE).toBe('/etc/keelson/tokens/tokens.yaml');
      expect(env.KEELSON_TOKEN_ADMIN).toBeUndefined();
      expect(env.KEELSON_WEBHOOK_SECRET).toEqual({ secretKeyRef: { name: 'my-hook', key: 'secret' } });
      const ingress = find(all, 'Ingress')!;
      expect(ingress.spec.rules[0]).toMatchObject({ host: 'hooks.example.com', http: { paths: [{ path: '/api/v1/webhooks/git', pathType: 'Exact' }] } });
    });

    it('narrows writes to listed namespaces with RoleBindings, and passes server-side validation', () => {
      const ns = uniqueNamespace('keelson-chart');
      const apps = uniqueNamespace('keelson-chart-apps');
      kubectl('create', 'namespace', ns);
      kubectl('create', 'namespace', apps);
      try {
        const release = `k${Math.random().toString(36).slice(2, 8)}`;
        const all = template(release, ns, 'repo.url=https://git.example.com/ops.git', `rbac.namespaces={${apps}}`, 'ingress.enabled=true');
        const binding = find(all, 'RoleBinding')!;
        expect(binding.metadata.namespace).toBe(apps);
        expect(binding.roleRef.name).toBe(`${release}-keelson-write`);
        expect(all.filter((d) => d.kind === 'ClusterRoleBinding').map((d) => d.metadata.name)).toEqual([`${release}-keelson-read`]);
        const write = find(all, 'ClusterRole', `${release}-keelson-write`)!;
        expect(JSON.stringify(write.rules)).not.toContain('namespaces');
        const rendered = helm('template', release, chart, '--namespace', ns, '--set', 'repo.url=https://git.example.com/ops.git', '--set', `rbac.namespaces={${apps}}`, '--set', 'ingress.enabled=true').out;
        const out = kubectlWithInput(rendered, 'apply', '--server-side', '--dry-run=server', '-f', '-');
        expect(out).toContain(`deployment.apps/${release}-keelson serverside-applied (server dry run)`);
        expect(out).toContain(`rolebinding.rbac.authorization.k8s.io/${release}-keelson-write serverside-applied (server dry run)`);
        expect(out).toContain(`ingress.networking.k8s.io/${release}-keelson serverside-applied (server dry run)`);
      } finally {
        kubectl('delete', 'namespace', ns, apps, '--wait=false');
      }
    });

    it('installs and upgrades with helm, keeping the generated admin token and webhook secret; the pod meets the restricted Pod Security Standard', () => {
      const ns = uniqueNamespace('keelson-helm');
      const release = `k${Math.random().toString(36).slice(2, 8)}`;
      const secretOf = () => kubectl('-n', ns, 'get', 'secret', `${release}-keelson-auth`, '-o', 'jsonpath={.data}');
      try {
        const installed = helm('install', release, chart, '--namespace', ns, '--create-namespace', '--set', 'repo.url=https://git.example.com/ops.git');
        expect(installed.out).toContain('STATUS: deployed');
        expect(installed.out).toContain(`kubectl -n ${ns} port-forward svc/${release}-keelson 7070:7070`);
        const before = secretOf();
        expect(before).toContain('admin-token');
        const upgraded = helm('upgrade', release, chart, '--namespace', ns, '--set', 'repo.url=https://git.example.com/ops.git', '--set', 'repo.poll=30s');
        expect(upgraded.out).toContain('STATUS: deployed');
        expect(secretOf()).toBe(before);
        expect(kubectl('-n', ns, 'get', 'deployment', `${release}-keelson`, '-o', 'jsonpath={.spec.template.spec.containers[0].env[?(@.name=="KEELSON_POLL")].value}')).toBe('30s');
        // The pod passes the "restricted" Pod Security Standard (admission checks it on a dry run too).
        kubectl('label', 'namespace', ns, 'pod-security.kubernetes.io/enforce=restricted');
        const template = JSON.parse(kubectl('-n', ns, 'get', 'deployment', `${release}-keelson`, '-o', 'jsonpath={.spec.template}'));
        const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'keelson-psa-check', namespace: ns, labels: template.metadata.labels }, spec: template.spec };
        expect(kubectlWithInput(JSON.stringify(pod), 'create', '--dry-run=server', '-f', '-')).toContain('pod/keelson-psa-check created (server dry run)');
      } finally {
        helm('uninstall', release, '--namespace', ns);
        kubectl('delete', 'namespace', ns, '--wait=false', '--ignore-not-found');
      }
    });
  });

  describe('the kustomize base', () => {
    it('deploy/kubernetes-sharded: 3 replicas with an emptyDir each, no PVC, a PodDisruptionBudget; passes server-side validation', () => {
      const ns = uniqueNamespace('keelson-sharded');
      const overlay = join(tmp.dir, 'overlay-sharded');
      mkdirSync(overlay, { recursive: true });
      writeFileSync(
        join(overlay, 'kustomization.yaml'),
        `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: ${ns}\nresources: [${relative(overlay, join(root, 'deploy', 'kubernetes-sharded'))}]\n`,
      );
      const built = kubectl('kustomize', overlay);
      const all = docs(built);
      const dep = find(all, 'Deployment')!;
      expect(dep.spec).toMatchObject({ replicas: 3, strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } } });
      expect(dep.spec.template.spec.volumes.find((v: any) => v.name === 'state')).toEqual({ name: 'state', emptyDir: {} });
      expect(find(all, 'PersistentVolumeClaim')).toBeUndefined();
      const pdb = find(all, 'PodDisruptionBudget')!;
      expect(pdb.metadata.namespace).toBe(ns);
      expect(pdb.spec.selector.matchLabels).toEqual(dep.spec.selector.matchLabels);
      try {
        kubectl('create', 'namespace', ns);
        const out = kubectlWithInput(built, 'apply', '--server-side', '--dry-run=server', '-f', '-');
        expect(out).toContain('deployment.apps/keelson serverside-applied (server dry run)');
        expect(out).toContain('poddisruptionbudget.policy/keelson serverside-applied (server dry run)');
      } finally {
        kubectl('delete', 'namespace', ns, '--wait=false');
      }
    });

    it('builds, and an overlay that names the ops repository applies and grants least privilege', () => {
      const ns = uniqueNamespace('keelson-kustomize');
      const overlay = join(tmp.dir, 'overlay');
      mkdirSync(overlay, { recursive: true });
      const prefix = `${ns.slice(-5)}-`;
      writeFileSync(
        join(overlay, 'kustomization.yaml'),
        `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: ${ns}
namePrefix: ${prefix}
resources: [${relative(overlay, base)}]
configMapGenerator:
  - name: keelson-config
    behavior: merge
    literals: [KEELSON_REPO=https://git.example.com/ops.git]
`,
      );
      const built = kubectl('kustomize', overlay);
      const all = docs(built);
      const dep = find(all, 'Deployment')!;
      expect(dep.spec).toMatchObject({ replicas: 1, strategy: { type: 'Recreate' } });
      const c = dep.spec.template.spec.containers[0];
      expect(c.image).toBe('keelson:0.1.0');
      expect(c.env.find((e: any) => e.name === 'KEELSON_LISTEN').value).toBe('0.0.0.0:7070');
      expect(c.env.find((e: any) => e.name === 'POD_IP').valueFrom).toEqual({ fieldRef: { fieldPath: 'status.podIP' } });
      const config = find(all, 'ConfigMap')!;
      expect(config.data.KEELSON_REPO).toBe('https://git.example.com/ops.git');
      expect(c.envFrom[0].configMapRef.name).toBe(config.metadata.name);
      try {
        // The Namespace first (a dry run creates nothing), then everything else, validated by the API server.
        kubectl('create', 'namespace', ns);
        const out = kubectlWithInput(built, 'apply', '--server-side', '--dry-run=server', '-f', '-');
        expect(out).toContain(`deployment.apps/${prefix}keelson serverside-applied (server dry run)`);
        expect(out).toContain(`clusterrolebinding.rbac.authorization.k8s.io/${prefix}keelson-write serverside-applied (server dry run)`);
        // For real, twice (a re-apply is clean), and the service account may do what the target needs, no more.
        for (let i = 0; i < 2; i++) expect(kubectl('apply', '--server-side', '-k', overlay)).toContain(`deployment.apps/${prefix}keelson serverside-applied`);
        const can = (...args: string[]) => {
          try {
            return kubectl('auth', 'can-i', `--as=system:serviceaccount:${ns}:${prefix}keelson`, ...args);
          } catch (err) {
            return String((err as { stdout?: string }).stdout ?? '').trim();
          }
        };
        expect(can('patch', 'deployments', '-n', 'shop')).toBe('yes');
        expect(can('watch', 'services', '--all-namespaces')).toBe('yes');
        expect(can('get', 'pods/log', '-n', 'shop')).toBe('yes');
        expect(can('create', 'namespaces')).toBe('yes');
        // The environment status mirror (`kubectl get kenv -A`).
        expect(can('patch', 'keelsonenvironments.keelson.dev', '--subresource=status', '-n', 'shop')).toBe('yes');
        expect(can('delete', 'keelsonenvironments.keelson.dev', '-n', 'shop')).toBe('no');
        expect(can('delete', 'namespaces')).toBe('no');
        expect(can('patch', 'poddisruptionbudgets', '-n', 'shop')).toBe('no');
        expect(can('create', 'clusterroles')).toBe('no');
        expect(can('impersonate', 'users')).toBe('no');
      } finally {
        kubectl('delete', 'clusterrole,clusterrolebinding', `${prefix}keelson-read`, `${prefix}keelson-write`, '--ignore-not-found');
        kubectl('delete', 'namespace', ns, '--wait=false');
      }
    });
  });

  // Writes anywhere (Keelson creates the environment's namespace), or only in the namespaces listed (which exist).
  describe.each([
    { scope: 'cluster-wide', namespaced: false },
    { scope: 'writes limited to rbac.namespaces', namespaced: true },
  ])(`${image ? `the image ${image}` : 'the engine'} with only the chart-granted in-cluster identity, $scope`, ({ namespaced }) => {
    const ns = uniqueNamespace('keelson-sys');
    const apps = uniqueNamespace('keelson-apps');
    const release = `k${Math.random().toString(36).slice(2, 8)}`;
    const sa = `${release}-keelson`;
    let engine: ChildProcess | undefined;
    let container: string | undefined;
    let listen = '';
    let logText = '';
    let url = '';
    let admin = '';
    let webhookSecret = '';
    const dir = join(tmp.dir, ns);
    const ops = join(dir, 'ops');

    const status = async () => {
      const res = await fetch(`${url}/api/v1/status?env=prod`, { headers: { authorization: `Bearer ${admin}` } });
      if (!res.ok) return undefined;
      return (await res.json()).environments[0] as { revision: string | null; apps: { name: string; sync: string; health: string; message: string }[] };
    };
    const app = async (name: string) => (await status())?.apps.find((a) => a.name === name);

    beforeAll(async () => {
      if (!helmBin()) throw new Error('KEELSON_HELM_BIN is not set: run `eval "$(scripts/tools.sh env)"` (scripts/test.sh does)');
      kubectl('create', 'namespace', ns);
      if (namespaced) kubectl('create', 'namespace', apps);
      // The chart's identity and RBAC, applied for real; its Deployment's environment is what the engine gets.
      const all = template(release, ns, `repo.url=file://${ops}`, ...(namespaced ? [`rbac.namespaces={${apps}}`] : []));
      const identity = all.filter((d) => ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'].includes(d.kind));
      kubectlWithInput(identity.map((d) => JSON.stringify(d)).join('\n'), 'apply', '--server-side', '-f', '-');
      const secret = find(all, 'Secret')!;
      const secretValue = (key: string) => Buffer.from(secret.data[key], 'base64').toString();
      const env: Record<string, string> = {};
      // The downward API's status.podIP is this host (the engine listens on loopback here, so it advertises that instead).
      for (const e of find(all, 'Deployment')!.spec.template.spec.containers[0].env) env[e.name] = e.value ?? (e.valueFrom.fieldRef ? '127.0.0.1' : secretValue(e.valueFrom.secretKeyRef.key));
      admin = env.KEELSON_TOKEN_ADMIN;
      webhookSecret = env.KEELSON_WEBHOOK_SECRET;

      // What the kubelet mounts: a bound token (TokenRequest), the cluster's CA, the namespace.
      const saDir = join(dir, 'serviceaccount');
      mkdirSync(saDir, { recursive: true });
      writeFileSync(join(saDir, 'token'), kubectl('create', 'token', sa, '-n', ns, '--duration', '1h'));
      writeFileSync(join(saDir, 'ca.crt'), Buffer.from(kubectl('config', 'view', '--raw', '--minify', '-o', 'jsonpath={.clusters[0].cluster.certificate-authority-data}'), 'base64'));
      writeFileSync(join(saDir, 'namespace'), ns);
      const server = new URL(kubectl('config', 'view', '--minify', '-o', 'jsonpath={.clusters[0].cluster.server}'));

      writeTree(ops, {
        'apps/web.yaml': `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: web }
spec:
  version: "1.0.0"
  image: registry.example/web
  port: 8080
`,
        'envs/prod.yaml': `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata: { name: prod }
spec:
  target: { kubernetes: { namespace: ${apps} } }
  apps: { web: { replicas: 2 } }
`,
      });
      gitInit(ops);
      commitAll(ops, 'web 1.0.0 in prod');

      const port = await freePort();
      url = `http://127.0.0.1:${port}`;
      // No kubeconfig anywhere: the service account is the only identity.
      const { KUBECONFIG: _k, ...parent } = process.env;
      listen = `0.0.0.0:${port}`;
      const inCluster = { ...env, KEELSON_LISTEN: listen, KEELSON_POLL: '1s', KUBERNETES_SERVICE_HOST: server.hostname, KUBERNETES_SERVICE_PORT: server.port || '443' };
      if (image) {
        // The image itself, run by buildah (chroot isolation, the host's network) as its user, with the kubelet's
        // mounts: the service account where the kubelet puts it, the state volume, an emptyDir on /tmp.
        const state = join(dir, 'state');
        const scratch = join(dir, 'tmpfs');
        for (const d of [state, scratch]) {
          mkdirSync(d, { recursive: true });
          chownSync(d, 10001, 10001);
        }
        // The fixture ops repository belongs to the test's user, not to 10001: git refuses it unless trusted in the
        // global git config, which the image reads from $XDG_CONFIG_HOME (/tmp/.config).
        mkdirSync(join(scratch, '.config', 'git'), { recursive: true });
        writeFileSync(join(scratch, '.config', 'git', 'config'), '[safe]\n\tdirectory = /srv/ops/.git\n');
        container = buildah('from', image);
        engine = spawn('buildah', [
          'run', '--isolation', 'chroot', '--user', '10001:10001',
          '-v', `${saDir}:/run/secrets/kubernetes.io/serviceaccount:ro` /* = /var/run/…, a symlink */, '-v', `${state}:/var/lib/keelson`, '-v', `${scratch}:/tmp`, '-v', `${ops}:/srv/ops:ro`,
          ...Object.entries({ ...inCluster, KEELSON_REPO: 'file:///srv/ops' }).flatMap(([k, v]) => ['--env', `${k}=${v}`]),
          container, '--', '/usr/bin/tini', '-s', '--', 'node', '/app/bin/keelson', 'up', // tini is PID 1 in a pod; here a subreaper
        ], { stdio: ['ignore', 'pipe', 'pipe'] });
      } else {
        // The image's entrypoint, outside a container.
        const home = join(dir, 'home');
        mkdirSync(home, { recursive: true });
        engine = spawn(process.execPath, [bin, 'up'], {
          env: {
            ...Object.fromEntries(Object.entries(parent).filter(([k]) => !k.startsWith('KEELSON_'))),
            ...inCluster,
            KEELSON_STATE_DIR: join(dir, 'state'),
            HOME: home,
            KEELSON_SERVICEACCOUNT_DIR: saDir,
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
      }
      engine.stdout!.on('data', (b) => (logText += b));
      engine.stderr!.on('data', (b) => (logText += b));
    });

    afterAll(async () => {
      await stopEngine();
      if (container) buildah('rm', container);
      if (process.env.DEBUG_INSTALL) console.log(logText);
      kubectl('delete', 'clusterrole,clusterrolebinding', `${release}-keelson-read`, `${release}-keelson-write`, '--ignore-not-found');
      kubectl('delete', 'namespace', ns, apps, '--wait=false', '--ignore-not-found');
    });

    /** SIGTERM, as the kubelet sends it; under buildah, to the engine itself (buildah does not forward it). */
    const stopEngine = async () => {
      if (!engine || engine.exitCode !== null) return;
      const exited = new Promise((r) => engine!.once('exit', r));
      if (image) {
        for (const pid of enginePids(listen)) process.kill(pid, 'SIGTERM');
        await waitFor('the engine stopped', () => enginePids(listen).length === 0, 15_000);
      } else engine.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    };

    it('deploys the app with no request refused', async () => {
      const web = await waitFor('web Synced and Healthy', async () => {
        const a = await app('web').catch(() => undefined);
        return a?.sync === 'Synced' && a.health === 'Healthy' ? a : undefined;
      }, 50_000);
      expect(web).toMatchObject({ sync: 'Synced', health: 'Healthy' });
      expect(kubectl('-n', apps, 'get', 'deployment/web', '-o', 'jsonpath={.metadata.labels.app\\.kubernetes\\.io/managed-by} {.spec.template.spec.containers[0].image} {.spec.replicas}')).toBe('keelson registry.example/web:1.0.0 2');
      expect(kubectl('-n', apps, 'get', 'service/web', '-o', 'name')).toBe('service/web');
      // Cluster-wide, Keelson created the environment's namespace itself.
      expect(kubectl('get', 'namespace', apps, '-o', 'jsonpath={.metadata.labels.app\\.kubernetes\\.io/managed-by}')).toBe(namespaced ? '' : 'keelson');
      expect(logText).not.toMatch(/forbidden|\b403\b/i);
    });

    it('accepts a signed git webhook and refuses an unsigned one', async () => {
      const body = JSON.stringify({ ref: 'refs/heads/main' });
      const unsigned = await fetch(`${url}/api/v1/webhooks/git`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-github-event': 'push' }, body });
      expect(unsigned.status).toBeGreaterThanOrEqual(400);
      const signature = `sha256=${createHmac('sha256', webhookSecret).update(body).digest('hex')}`;
      const signed = await fetch(`${url}/api/v1/webhooks/git`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-github-event': 'push', 'x-hub-signature-256': signature }, body });
      expect(signed.status).toBeLessThan(300);
    });

    it('is refused a kind outside the chart’s RBAC, and says so for that app only', async () => {
      writeTree(ops, {
        'apps/budget.yaml': `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: budget }
spec:
  version: "1"
  manifests: ../manifests/budget
`,
        'manifests/budget/pdb.yaml': `apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: { name: web }
spec:
  minAvailable: 1
  selector: { matchLabels: { app: web } }
`,
        'envs/prod.yaml': readFileSync(join(ops, 'envs/prod.yaml'), 'utf8').replace('apps: { web: { replicas: 2 } }', 'apps: { web: { replicas: 2 }, budget: {} }'),
      });
      commitAll(ops, 'a PodDisruptionBudget');
      const budget = await waitFor('budget refused', async () => {
        const a = await app('budget').catch(() => undefined);
        return a && /forbidden/i.test(a.message) ? a : undefined;
      }, 50_000);
      expect(budget.sync).not.toBe('Synced');
      expect(budget.message).toMatch(/poddisruptionbudgets/i);
      expect(budget.message).toContain(`system:serviceaccount:${ns}:${sa}`);
      expect(budget.message).toContain("grant Keelson's identity this permission (the Helm chart's rbac.rules value");
      expect(kubectl('-n', apps, 'get', 'poddisruptionbudgets', '-o', 'name')).toBe('');
      expect(await app('web')).toMatchObject({ sync: 'Synced', health: 'Healthy' });
    });

    it.runIf(image)('stops on SIGTERM, having written nothing outside its volumes (read-only root filesystem)', async () => {
      await stopEngine();
      expect(logText).toContain('keelson stopping');
      expect(rootfsWrites(container!)).toEqual([]);
    });
  });
});

/** The processes of the image's engine that listens on `listen` (found by their environment: they outlive buildah). */
function enginePids(listen: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8');
      if (!cmd.includes('/app/bin/keelson')) continue;
      if (readFileSync(`/proc/${name}/environ`, 'utf8').split('\0').includes(`KEELSON_LISTEN=${listen}`)) pids.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/**
 * Files the container wrote to its own filesystem (its overlay's upper layer), mount points and buildah's own
 * run-time files aside: what a read-only root filesystem would have refused.
 */
function rootfsWrites(container: string): string[] {
  const id = buildah('inspect', '--type', 'container', '--format', '{{.ContainerID}}', container);
  const storage = buildah('info', '--format', '{{.store.GraphRoot}}');
  const record = JSON.parse(readFileSync(join(storage, 'overlay-containers', 'containers.json'), 'utf8')).find((c: { id: string }) => c.id === id);
  const upper = join(storage, 'overlay', record.layer, 'diff');
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      const rel = `/${relative(upper, p)}`;
      if (rel === '/run' || rel.startsWith('/run/')) continue; // buildah's .containerenv, secrets mount points
      if (e.isDirectory()) walk(p);
      else out.push(rel);
    }
  };
  walk(upper);
  return out;
}
