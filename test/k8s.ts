/**
 * The Kubernetes suite runs against the test control plane of scripts/testenv.sh (real kube-apiserver, etcd,
 * controller-manager, scheduler, kwok nodes). `scripts/test.sh` starts it and exports KUBECONFIG; run by hand:
 *
 *   scripts/testenv.sh start && eval "$(scripts/testenv.sh env)" && npx vitest run src/targets/kubernetes
 *
 * Without a control plane the suite is skipped with the reason — except in CI (CI set), where it fails.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { EventBus } from '../src/core/events.js';
import type { DesiredApp } from '../src/core/model.js';
import { silentLogger } from '../src/log.js';
import { Store } from '../src/store/store.js';
import { KubernetesTarget } from '../src/targets/kubernetes/kubernetes-target.js';
import { tempDir } from './helpers.js';

export function kubernetesUnavailable(): string | undefined {
  const kubeconfig = process.env.KUBECONFIG;
  if (kubeconfig && existsSync(kubeconfig)) return undefined;
  let hasGo = true;
  try {
    execFileSync('go', ['version'], { stdio: 'ignore' });
  } catch {
    hasGo = false;
  }
  if (!hasGo) return 'Go is not installed: the test control plane is built from Go modules by scripts/testenv.sh; install Go >= 1.26';
  return 'no test control plane: run `scripts/testenv.sh start && eval "$(scripts/testenv.sh env)"` (KUBECONFIG is not set)';
}

/** `kubectl` with the test kubeconfig (the built one is first on PATH after `testenv.sh env`). */
export function kubectl(...args: string[]): string {
  return execFileSync('kubectl', args, { encoding: 'utf8', env: process.env, stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/** `kubectl` reading `input` on stdin (`-f -`). */
export function kubectlWithInput(input: string, ...args: string[]): string {
  return execFileSync('kubectl', args, { encoding: 'utf8', env: process.env, input, stdio: ['pipe', 'pipe', 'pipe'] }).trim();
}

/** A namespace name unique to this test run. */
export function uniqueNamespace(prefix: string): string {
  return `${prefix}-${process.pid.toString(36)}-${Math.random().toString(36).slice(2, 7)}`.slice(0, 63);
}

/**
 * A suite against the test control plane. Without one it is skipped and says why, except in CI, where it fails:
 * a Kubernetes suite that did not run must not pass.
 */
export function kubernetesSuite(name: string, body: () => void): void {
  const why = kubernetesUnavailable();
  const suite = why && !process.env.CI ? describe.skip : describe;
  suite(`${name}${why ? ` (${why})` : ''}`, () => {
    if (why) {
      it('can run here', () => {
        throw new Error(`the Kubernetes suite must run in CI: ${why}`);
      });
      return;
    }
    body();
  });
}

/**
 * A Deployment manifest `name` (pods labelled `app: name`) running `image`; `unschedulable` pods never run (a node
 * selector no kwok node matches), so it never becomes ready.
 */
export function deploymentYaml(name: string, o: { image: string; replicas?: number; progressDeadlineSeconds?: number; unschedulable?: boolean }): string {
  return `apiVersion: apps/v1
kind: Deployment
metadata: { name: ${name} }
spec:
${o.replicas !== undefined ? `  replicas: ${o.replicas}\n` : ''}${o.progressDeadlineSeconds !== undefined ? `  progressDeadlineSeconds: ${o.progressDeadlineSeconds}\n` : ''}  selector: { matchLabels: { app: ${name} } }
  template:
    metadata: { labels: { app: ${name} } }
    spec:
      containers: [{ name: ${name}, image: "${o.image}" }]
${o.unschedulable ? '      nodeSelector: { keelson.dev/never: "true" }\n' : ''}`;
}

/** App `name` of plain manifests in `dir` of the checkout, as the Kubernetes target tests apply it (`over` wins). */
export function manifestsAppOf(name: string, env: string, dir: string, over: Partial<DesiredApp> = {}): DesiredApp {
  return {
    name,
    env,
    version: '1',
    artifact: { path: dir },
    command: [],
    vars: {},
    replicas: 1,
    dependsOn: [],
    progressDeadlineSeconds: 10,
    terminationGracePeriodSeconds: 5,
    source: { file: `apps/${name}.yaml`, line: 1, col: 1 },
    manifests: { dir, replicas: false },
    ...over,
  };
}

/**
 * The Kubernetes targets of one suite, each in a namespace of its own, on one store and bus: `newTarget(prefix)`
 * makes one; after the suite every target is closed and its namespace (and any in `extraNamespaces`) deleted.
 * Call it in the suite's body (it registers beforeAll/afterAll).
 */
export function suiteTargets(name: string, opts: { chartCache?: boolean } = {}) {
  const tmp = tempDir(`keelson-${name}-`);
  const bus = new EventBus();
  const targets: KubernetesTarget[] = [];
  const extraNamespaces: string[] = [];
  let store: Store | undefined;
  beforeAll(() => {
    store = new Store(join(tmp.dir, 'state'));
  });
  afterAll(async () => {
    for (const t of targets) {
      await t.close();
      kubectl('delete', 'namespace', t.namespace, '--wait=false', '--ignore-not-found');
    }
    for (const ns of extraNamespaces) kubectl('delete', 'namespace', ns, '--wait=false', '--ignore-not-found');
    store?.close();
    tmp.cleanup();
  });
  return {
    tmp,
    bus,
    extraNamespaces,
    get store(): Store {
      if (!store) throw new Error('suiteTargets: the store opens in beforeAll');
      return store;
    },
    newTarget(prefix: string): { t: KubernetesTarget; env: string; namespace: string } {
      const namespace = uniqueNamespace(prefix);
      const chartCacheDir = opts.chartCache ? join(tmp.dir, 'state', 'charts') : undefined;
      const t = new KubernetesTarget({ env: namespace, spec: { namespace }, store: this.store, bus, log: silentLogger(), requeue: () => undefined, ...(chartCacheDir ? { chartCacheDir } : {}) });
      targets.push(t);
      return { t, env: namespace, namespace };
    },
  };
}
