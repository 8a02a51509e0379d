/**
 * Flux as a peer of Keelson's Kubernetes target: source-controller and kustomize-controller (built by
 * bench/peers/flux.sh) run as processes on loopback against the test control plane, the way kube-apiserver runs,
 * with a GitRepository served over smart HTTP (bench/git-http.mjs) and one Kustomization per app.
 *
 * Reconciles are requested the way `flux reconcile` does it: the annotation `reconcile.fluxcd.io/requestedAt`
 * set to a new value; the controller records the value it handled in `status.lastHandledReconcileAt`. Intervals are
 * long (1 h) so that no measurement waits for, or is helped by, a timer.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, onCleanup, root, stopProcess, waitFor } from './lib.mjs';
import { liveWatch } from './live-watch.mjs';

const execFileP = promisify(execFile);

export const REQUESTED_AT = 'reconcile.fluxcd.io/requestedAt';
export const SOURCE_API = 'source.toolkit.fluxcd.io/v1';
export const KUSTOMIZE_API = 'kustomize.toolkit.fluxcd.io/v1';

/**
 * The controllers' binaries and CRDs: built (once, cached) by bench/peers/flux.sh. A missing Go toolchain or a failed
 * build is an error that says what to do.
 */
export function fluxTools() {
  const script = join(root, 'bench', 'peers', 'flux.sh');
  const env = () => Object.fromEntries([...execFileSync(script, ['env'], { encoding: 'utf8' }).matchAll(/^export (\w+)=(.*)$/gm)].map((m) => [m[1], m[2].replace(/^'(.*)'$/, '$1')]));
  let e = env();
  if (!e.KEELSON_FLUX_SOURCE_BIN) {
    console.log('flux: building source-controller and kustomize-controller (bench/peers/flux.sh build; once, cached)');
    try {
      execFileSync(script, ['build'], { stdio: ['ignore', 'inherit', 'inherit'] });
    } catch {
      throw new Error('Flux is not built and `bench/peers/flux.sh build` failed (see above; it needs Go >= 1.26 and the Go module proxy)');
    }
    e = env();
  }
  return { source: e.KEELSON_FLUX_SOURCE_BIN, kustomize: e.KEELSON_FLUX_KUSTOMIZE_BIN, crds: e.KEELSON_FLUX_CRDS, version: e.KEELSON_FLUX_VERSION };
}

/** Installs (or updates) the CRDs, in the cluster of $KUBECONFIG. */
export async function installCrds(tools) {
  await execFileP('kubectl', ['apply', '--server-side', '--force-conflicts', '--field-manager=keelson-bench', '-f', tools.crds], { maxBuffer: 64 * 1024 * 1024 });
  await execFileP('kubectl', ['wait', '--for=condition=Established', '--timeout=120s', 'crd/gitrepositories.source.toolkit.fluxcd.io', 'crd/kustomizations.kustomize.toolkit.fluxcd.io']);
}

/**
 * Starts both controllers on loopback (metrics, health, artifact server), their home `namespace` (RUNTIME_NAMESPACE)
 * existing. `concurrent`: kustomize-controller's parallel reconciles. Returns their pids and `stop()`.
 */
export async function startFlux(tools, { dir, namespace, concurrent }) {
  mkdirSync(join(dir, 'storage'), { recursive: true });
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  const storagePort = await freePort();
  const env = { ...process.env, RUNTIME_NAMESPACE: namespace, TMPDIR: join(dir, 'tmp') };
  const common = async () => {
    const health = await freePort();
    const metrics = await freePort();
    return { health, metrics, args: [`--metrics-addr=127.0.0.1:${metrics}`, `--health-addr=127.0.0.1:${health}`, '--enable-leader-election=false', '--log-level=info', '--log-encoding=json'] };
  };
  const s = await common();
  const k = await common();
  const run = (name, bin, args) => {
    const child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const log = createWriteStream(join(dir, `${name}.log`));
    child.stdout.pipe(log);
    child.stderr.pipe(log);
    return child;
  };
  const source = run('source-controller', tools.source, [
    ...s.args,
    `--storage-path=${join(dir, 'storage')}`,
    `--storage-addr=127.0.0.1:${storagePort}`,
    `--storage-adv-addr=127.0.0.1:${storagePort}`,
  ]);
  const kustomize = run('kustomize-controller', tools.kustomize, [...k.args, `--concurrent=${concurrent}`]);
  const stop = async () => {
    await Promise.all([stopProcess(source), stopProcess(kustomize)]);
  };
  onCleanup(stop);
  for (const [name, child, port] of [['source-controller', source, s.health], ['kustomize-controller', kustomize, k.health]]) {
    await waitFor(`${name} ready (log: ${join(dir, `${name}.log`)})`, async () => {
      if (child.exitCode !== null) throw new Error(`${name} exited ${child.exitCode}; see ${join(dir, `${name}.log`)}`);
      const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
      return res?.ok;
    }, { timeoutMs: 120_000, intervalMs: 200 });
  }
  return { pids: { 'source-controller': source.pid, 'kustomize-controller': kustomize.pid }, metrics: { 'source-controller': s.metrics, 'kustomize-controller': k.metrics }, stop, logs: dir };
}

/**
 * The requests both controllers sent to the API server so far, by HTTP method (client-go's own counter
 * `rest_client_requests_total` on their metrics endpoints): exact per process, unlike the API server's counters, which
 * the other users of a shared cluster add to.
 */
export async function fluxRequests(flux) {
  const by = {};
  for (const port of Object.values(flux.metrics)) {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    for (const m of text.matchAll(/^rest_client_requests_total\{([^}]*)\} (\S+)$/gm)) {
      const method = /method="(\w+)"/.exec(m[1])?.[1] ?? '?';
      by[method] = (by[method] ?? 0) + Number(m[2]);
    }
  }
  return by;
}

/** Requests between two `fluxRequests` snapshots: `{ total, by: { GET: n, PATCH: n, … } }`. */
export function requestsBetween(a, b) {
  const by = {};
  for (const [k, v] of Object.entries(b)) if (v - (a[k] ?? 0) > 0) by[k] = v - (a[k] ?? 0);
  return { total: Object.values(by).reduce((x, y) => x + y, 0), by };
}

/** The GitRepository of the ops repository, at `url`, branch main. */
export function gitRepository(name, namespace, url) {
  return {
    apiVersion: SOURCE_API,
    kind: 'GitRepository',
    metadata: { name, namespace },
    spec: { url, interval: '1h', timeout: '120s', ref: { branch: 'main' } },
  };
}

/** One app as a Kustomization: its manifests directory, into `targetNamespace`, pruned, waited for (health). */
export function kustomization({ name, namespace, source, path, targetNamespace }) {
  return {
    apiVersion: KUSTOMIZE_API,
    kind: 'Kustomization',
    metadata: { name, namespace },
    spec: {
      interval: '1h',
      retryInterval: '10s',
      timeout: '10m',
      path,
      prune: true,
      wait: true,
      targetNamespace,
      sourceRef: { kind: 'GitRepository', name: source },
    },
  };
}

/** Ready=True of a Flux object's status, with the condition's reason (or undefined when there is none yet). */
export function readyOf(o) {
  const c = (o?.status?.conditions ?? []).find((x) => x.type === 'Ready');
  return c ? { ok: c.status === 'True', reason: c.reason, message: c.message } : undefined;
}

/** Runs `fn` over `items` with at most `limit` at once. */
export async function pool(items, limit, fn) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * A list + watch of the Flux objects of one kind in `namespace`: `state` holds the latest of each, `until(what, pred)`
 * resolves at the first event after which `pred(state)` holds.
 */
export function fluxWatch(api, path, onCleanupAbort) {
  return liveWatch(api, path, { keyOf: (o) => o.metadata.name, onCleanup: onCleanupAbort });
}
