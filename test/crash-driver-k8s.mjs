/**
 * The crash driver's Kubernetes mode (issue 10, item 3): a real `keelson up` applying an environment to the test
 * control plane (scripts/testenv.sh) is killed with SIGKILL at seeded random moments of its applies — a random delay
 * after a commit, or as soon as a random number of object changes were seen in the namespace (a watch per kind) —
 * and restarted. The environment: `web` (rolling, with a postSync http hook), `api` (canary), `front` (blue/green),
 * `cfg` (plain manifests: ConfigMaps, one of them renamed now and then so prune has work, a Secret, an Argo CD
 * PostSync hook Job that carries the version) and now and then `tmp` (added, removed: an app pruned whole). Once the
 * engine says every app is Synced and Healthy at its desired version the driver checks:
 * - one version per app: one Deployment per image app, at the desired image, its replicas all updated and ready, no
 *   pod of the app on another image;
 * - inventory equal to live: every live object labelled for the environment (hooks apart) is in its app's record
 *   (`kubernetes.inventory/<env>/<app>`) with the applied hash the record names, every recorded object is live, no
 *   record keeps a pending marker, the records and the engine's inventory name exactly the declared apps at their
 *   desired versions (no orphan object after prunes, nothing of a removed app left);
 * - hooks: the PostSync Job of `cfg` ran (succeeded) for the desired version; `web`'s postSync hook was called for it;
 * - history intact: the store opens (`pragma integrity_check`) and lists every completed sync.
 * Used by test/e2e/crash-driver-k8s.test.ts (a few kills) and bench/crash-driver.mjs (a longer run).
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { freePort, git, sleep, waitFor, writeTree as write } from '../bench/lib.mjs';
import { bin, engineProcess, prng } from './crash-lib.mjs';

const kubectl = (...args) => execFileSync('kubectl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
const kinds = ['configmaps', 'secrets', 'services', 'deployments', 'jobs'];
const kindOf = { configmaps: 'ConfigMap', secrets: 'Secret', services: 'Service', deployments: 'Deployment', jobs: 'Job' };

/** Counts watch events of the namespace's objects (one `kubectl get --watch` per kind). */
function watchNamespace(namespace) {
  let seen = 0;
  const children = kinds.map((k) => {
    const c = spawn('kubectl', ['-n', namespace, 'get', k, '--watch-only', '--output-watch-events', '-o', 'name'], { stdio: ['ignore', 'pipe', 'ignore'] });
    c.stdout.on('data', (b) => (seen += b.toString().split('\n').filter(Boolean).length));
    return c;
  });
  return {
    get seen() {
      return seen;
    },
    stop() {
      for (const c of children) c.kill('SIGKILL');
    },
  };
}

/** An HTTP server that records the postSync hook's calls: `/hook?app=A&v=VERSION`. */
async function hookServer() {
  const calls = [];
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    calls.push({ app: u.searchParams.get('app'), version: u.searchParams.get('v'), at: Date.now() });
    res.end('ok');
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { calls, port: server.address().port, close: () => new Promise((r) => server.close(r)) };
}

/**
 * Runs the Kubernetes mode against the cluster of KUBECONFIG. Returns `{ seed, kills, survived, midApply, byTrigger,
 * divergences, convergenceMs, namespace }`.
 */
export async function runKubernetesCrashDriver(o = {}) {
  const seed = o.seed ?? (Date.now() % 2 ** 31);
  const kills = o.kills ?? 4;
  const maxDelayMs = o.maxDelayMs ?? 6000;
  const convergeMs = o.convergeMs ?? 300_000;
  // Generous: on a shared, loaded control plane pods can take minutes to be scheduled and ready, and a rollout that
  // misses its deadline fails for that reason, not for the kill.
  const deadline = o.progressDeadlineSeconds ?? 180;
  const log = o.log ?? ((s) => console.log(s));
  const rand = prng(seed);
  const suffix = `${process.pid.toString(36)}-${seed.toString(36)}`.slice(-12);
  const namespace = `k-crash-drv-${suffix}`;
  const envName = `kc${suffix.replace(/[^a-z0-9]/g, '')}`;
  log(`crash driver (kubernetes): seed ${seed}, ${kills} kills, namespace ${namespace}, environment ${envName}`);

  const tmp = mkdtempSync(join(tmpdir(), 'keelson-crash-k8s-'));
  const ops = join(tmp, 'ops');
  const state = join(tmp, 'state');
  const token = `kls_crash_driver_k8s_${seed}_0123456789`;
  const apiPort = await freePort();
  const api = `http://127.0.0.1:${apiPort}`;
  const auth = { authorization: `Bearer ${token}` };
  const hooks = await hookServer();

  const apps = {
    web: { version: 1, image: true, strategy: 'rolling' },
    api: { version: 1, image: true, strategy: 'canary' },
    front: { version: 1, image: true, strategy: 'blueGreen' },
    cfg: { version: 1, image: false },
    tmp: { version: 1, image: false, absent: true },
  };
  const replicas = 2;
  const declared = () => Object.keys(apps).filter((a) => !apps[a].absent);
  const rollout = {
    rolling: '    strategy: rolling\n',
    canary: '    strategy: canary\n    canary:\n      steps:\n        - setWeight: 50\n        - pause: { durationSeconds: 2 }\n',
    blueGreen: '    strategy: blueGreen\n    blueGreen: { autoPromotionEnabled: true, scaleDownDelaySeconds: 1 }\n',
  };
  const imageApp = (name) => `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: ${name} }
spec:
  version: "1"
  image: registry.example/${name}
  replicas: ${replicas}
  port: 8080
${name === 'web' ? `  hooks:\n    postSync:\n      - name: notify\n        http: { url: "http://127.0.0.1:${hooks.port}/hook?app=web&v={version}", method: GET, expectStatus: 200 }\n` : ''}  rollout:
    progressDeadlineSeconds: ${deadline}
${rollout[apps[name].strategy]}`;
  const manifestApp = (name) => `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: ${name} }
spec:
  version: "1"
  manifests: ../manifests/${name}
`;
  /** cfg's objects at version v: two ConfigMaps (one renamed every third version), a Secret, a PostSync Job. */
  const cfgFiles = (v) => ({
    'manifests/cfg/config.yaml': `apiVersion: v1
kind: ConfigMap
metadata: { name: cfg-main }
data: { version: "${v}" }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: cfg-extra-${v % 3} }
data: { version: "${v}" }
---
apiVersion: v1
kind: Secret
metadata: { name: cfg-secret }
stringData: { token: "t-${v}" }
`,
    'manifests/cfg/smoke.yaml': `apiVersion: batch/v1
kind: Job
metadata:
  name: cfg-smoke
  annotations: { argocd.argoproj.io/hook: PostSync, argocd.argoproj.io/hook-delete-policy: BeforeHookCreation }
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers: [{ name: smoke, image: registry.example/smoke:1, env: [{ name: VERSION, value: "${v}" }] }]
`,
  });
  const tmpFiles = (v) => ({ 'manifests/tmp/config.yaml': `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: tmp-config }\ndata: { version: "${v}" }\n` });
  const envYaml = () => `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata: { name: ${envName} }
spec:
  target: { kubernetes: { namespace: ${namespace} } }
  apps:
${declared()
  .map((a) => `    ${a}: { version: "${apps[a].version}" }\n`)
  .join('')}`;
  const files = () => ({ [`environments/${envName}.yaml`]: envYaml(), ...cfgFiles(apps.cfg.version), ...tmpFiles(apps.tmp.version) });
  write(ops, { 'apps/web.yaml': imageApp('web'), 'apps/api.yaml': imageApp('api'), 'apps/front.yaml': imageApp('front'), 'apps/cfg.yaml': manifestApp('cfg'), 'apps/tmp.yaml': manifestApp('tmp'), ...files() });
  git(ops, 'init', '-q', '-b', 'main');
  git(ops, 'config', 'gc.auto', '0');
  git(ops, 'add', '-A');
  git(ops, 'commit', '-q', '-m', 'initial');
  const commit = (message) => {
    write(ops, files());
    git(ops, 'add', '-A');
    git(ops, 'commit', '-q', '-m', message);
  };

  const engine = engineProcess({ args: ['--repo', ops, '--state-dir', state, '--listen', `127.0.0.1:${apiPort}`, '--poll', '1s'], env: { KEELSON_TOKEN_OPERATOR: token }, logDir: tmp });
  const get = async (path) => {
    const res = await fetch(`${api}${path}`, { headers: auth });
    if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    return res.json();
  };
  const status = async () => (await get('/api/v1/status')).environments.find((e) => e.name === envName);
  const converged = async () => {
    const env = await status().catch(() => undefined);
    if (!env) return false;
    const names = declared();
    if (env.apps.length !== names.length) return false;
    for (const a of names) {
      const s = env.apps.find((x) => x.name === a);
      if (!s || s.sync !== 'Synced' || s.health !== 'Healthy' || s.version !== String(apps[a].version)) return false;
    }
    return env;
  };

  const result = { seed, kills, survived: 0, midApply: 0, byTrigger: { delay: 0, writes: 0 }, divergences: [], convergenceMs: [], namespace, tmp };
  const diverged = (kill, check, detail, app) => {
    result.divergences.push({ kill, app, check, detail });
    log(`  DIVERGENCE after kill ${kill}${app ? ` (${app})` : ''}: ${check}: ${detail}`);
  };
  let completedSyncs = new Set();

  const liveObjects = () => {
    const out = [];
    for (const k of kinds) {
      const list = JSON.parse(kubectl('-n', namespace, 'get', k, '-l', `keelson.dev/env=${envName}`, '-o', 'json')).items;
      for (const item of list) out.push(item);
    }
    return out;
  };
  const isHook = (obj) => !!obj.metadata.annotations?.['argocd.argoproj.io/hook'] || !!obj.metadata.labels?.['keelson.dev/hook'] || /-run-[0-9a-f]+$/.test(obj.metadata.name);

  const checkOnce = async (kill) => {
    const found = [];
    const add = (check, detail, app) => found.push({ kill, app, check, detail });
    const names = declared();
    let db;
    const records = new Map();
    try {
      db = new Database(join(state, 'keelson.db'), { readonly: true, fileMustExist: true });
      const integrity = db.pragma('integrity_check', { simple: true });
      if (integrity !== 'ok') add('history intact', `integrity_check: ${integrity}`);
      const kv = (key) => db.prepare('select value from kv where key = ?').get(key)?.value;
      const recorded = JSON.parse(kv(`kubernetes.inventory/${envName}`) ?? '[]').sort();
      if (JSON.stringify(recorded) !== JSON.stringify([...names].sort())) add('inventory equal to live', `the target records apps ${recorded.join(', ')}, the environment declares ${names.join(', ')}`);
      for (const a of Object.keys(apps)) {
        const raw = kv(`kubernetes.inventory/${envName}/${a}`);
        const rec = raw ? JSON.parse(raw) : undefined;
        if (rec) records.set(a, rec);
        if (apps[a].absent) {
          if (rec) add('no orphan object', `a record of removed app ${a} remains`, a);
          continue;
        }
        if (!rec) add('inventory equal to live', 'no target record', a);
        else {
          if (rec.version !== String(apps[a].version)) add('inventory equal to live', `the record says ${rec.version}, desired ${apps[a].version}`, a);
          if (rec.pending) add('inventory equal to live', `the record keeps a pending marker (${rec.pending.phase} of ${rec.pending.revision.slice(0, 7)})`, a);
        }
      }
      const rows = db.prepare('select app, version from inventory where env = ?').all(envName);
      const rowApps = rows.map((r) => r.app).sort();
      if (JSON.stringify(rowApps) !== JSON.stringify([...names].sort())) add('inventory equal to live', `the engine's inventory has ${rowApps.join(', ')}, the environment declares ${names.join(', ')}`);
      for (const r of rows) if (!apps[r.app]?.absent && r.version !== String(apps[r.app]?.version)) add('inventory equal to live', `the engine's inventory says ${r.version}, desired ${apps[r.app]?.version}`, r.app);
    } catch (err) {
      add('history intact', `the store does not open: ${err.message}`);
    } finally {
      db?.close();
    }
    // Live against the records.
    const live = liveObjects();
    const liveKeys = new Set();
    for (const obj of live) {
      if (isHook(obj) || obj.metadata.deletionTimestamp) continue;
      const app = obj.metadata.labels?.['keelson.dev/app'];
      const key = `${obj.kind}/${obj.metadata.name}`;
      liveKeys.add(`${app}/${key}`);
      const rec = records.get(app);
      const mine = rec?.objects.find((x) => x.kind === obj.kind && x.metadata.name === obj.metadata.name);
      if (!rec || apps[app]?.absent) add('no orphan object', `${key} is live, labelled for app ${app}, which the environment does not declare`, app);
      else if (!mine) add('no orphan object', `${key} is live but not in ${app}'s record`, app);
      else if (mine.metadata.annotations?.['keelson.dev/applied'] !== obj.metadata.annotations?.['keelson.dev/applied']) add('inventory equal to live', `${key}: live applied hash ${obj.metadata.annotations?.['keelson.dev/applied']}, recorded ${mine.metadata.annotations?.['keelson.dev/applied']}`, app);
    }
    for (const [app, rec] of records) {
      if (apps[app]?.absent) continue;
      for (const x of rec.objects) {
        if (!kindOf[`${x.kind.toLowerCase()}s`]) continue;
        if (!liveKeys.has(`${app}/${x.kind}/${x.metadata.name}`)) add('inventory equal to live', `${x.kind}/${x.metadata.name} is recorded but not live`, app);
      }
    }
    // One version per image app.
    const deployments = live.filter((x) => x.kind === 'Deployment' && !x.metadata.deletionTimestamp);
    const pods = JSON.parse(kubectl('-n', namespace, 'get', 'pods', '-o', 'json')).items.filter((p) => !p.metadata.deletionTimestamp && p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed');
    for (const [a, spec] of Object.entries(apps)) {
      if (!spec.image) continue;
      const ofApp = (p) => p.metadata.labels?.['app.kubernetes.io/instance'] === `${envName}-${a}` && !/-run-/.test(p.metadata.name);
      const image = `registry.example/${a}:${spec.version}`;
      const mine = deployments.filter((d) => d.metadata.labels?.['keelson.dev/app'] === a);
      const images = mine.map((d) => d.spec.template.spec.containers[0].image);
      if (mine.length !== 1 || images[0] !== image) add('one version per app', `Deployments ${mine.map((d, i) => `${d.metadata.name} (${images[i]})`).join(', ') || 'none'}, desired ${image}`, a);
      for (const d of mine) {
        const s = d.status ?? {};
        if (d.spec.replicas !== replicas || s.updatedReplicas !== replicas || s.readyReplicas !== replicas || (s.replicas ?? 0) !== replicas) add('one version per app', `${d.metadata.name}: spec ${d.spec.replicas}, ${s.replicas ?? 0} pods, ${s.updatedReplicas ?? 0} updated, ${s.readyReplicas ?? 0} ready; wanted ${replicas}`, a);
      }
      const other = pods.filter((p) => ofApp(p) && p.spec.containers[0].image !== image);
      if (other.length) add('one version per app', `pods on another image: ${other.map((p) => `${p.metadata.name} (${p.spec.containers[0].image})`).join(', ')}`, a);
      const current = pods.filter((p) => ofApp(p) && p.spec.containers[0].image === image);
      if (current.length !== replicas) add('one version per app', `${current.length} pods on ${image}, wanted ${replicas}`, a);
    }
    // Hooks: cfg's PostSync Job for the desired version, web's postSync hook called for it.
    const job = live.find((x) => x.kind === 'Job' && x.metadata.name === 'cfg-smoke');
    const jobVersion = job?.spec.template.spec.containers[0].env?.find((e) => e.name === 'VERSION')?.value;
    if (!job || jobVersion !== String(apps.cfg.version) || job.status?.succeeded !== 1)
      add('hooks ran', `cfg's PostSync Job: ${job ? `version ${jobVersion}, succeeded ${job.status?.succeeded ?? 0}` : 'none'}; desired version ${apps.cfg.version}`, 'cfg');
    if (!hooks.calls.some((c) => c.app === 'web' && c.version === String(apps.web.version))) add('hooks ran', `web's postSync hook was never called for ${apps.web.version} (calls: ${hooks.calls.filter((c) => c.app === 'web').map((c) => c.version).join(', ')})`, 'web');
    // History.
    const syncs = (await get(`/api/v1/history?env=${envName}&limit=1000`)).syncs;
    const ids = new Set(syncs.map((s) => s.id));
    const lost = [...completedSyncs].filter((id) => !ids.has(id));
    if (lost.length) add('history intact', `completed syncs ${lost.join(', ')} no longer listed`);
    else if (!found.length) completedSyncs = ids;
    return found;
  };
  const check = async (kill) => {
    const t0 = Date.now();
    const until = t0 + (o.settleMs ?? 20_000);
    let first;
    for (;;) {
      const found = await checkOnce(kill);
      first ??= found[0];
      if (!found.length) {
        if (first) log(`  settled in ${Date.now() - t0} ms (first: ${first.check}${first.app ? ` (${first.app})` : ''}: ${first.detail.slice(0, 160)})`);
        return;
      }
      if (Date.now() > until) {
        for (const d of found) diverged(d.kill, d.check, d.detail, d.app);
        return;
      }
      await sleep(1000);
    }
  };

  const watch = watchNamespace(namespace);
  try {
    engine.start();
    await waitFor('the first deploy', converged, { timeoutMs: convergeMs, intervalMs: 250 });
    await check(0);
    for (let k = 1; k <= kills; k++) {
      // A new version of some apps (now and then a revert to the one before), now and then tmp added or removed.
      const names = ['web', 'api', 'front', 'cfg'];
      const bump = names.filter(() => rand() < 0.5);
      if (!bump.length) bump.push(names[Math.floor(rand() * names.length)]);
      const top = Math.max(...Object.values(apps).map((a) => a.version)) + 1;
      const moves = bump.map((a) => {
        const revert = apps[a].prev !== undefined && rand() < 0.25;
        const to = revert ? apps[a].prev : top;
        apps[a].prev = apps[a].version;
        apps[a].version = to;
        return `${a} → ${to}${revert ? ' (revert)' : ''}`;
      });
      if (rand() < 0.35) {
        apps.tmp.absent = !apps.tmp.absent;
        if (!apps.tmp.absent) apps.tmp.version = top;
        moves.push(apps.tmp.absent ? 'tmp removed' : `tmp added at ${top}`);
      }
      const seenBefore = watch.seen;
      commit(moves.join(', '));
      let at;
      if (rand() < 0.5) {
        const delay = Math.floor(rand() * maxDelayMs);
        await sleep(delay);
        at = `${delay} ms after the commit`;
        result.byTrigger.delay++;
      } else {
        const n = 1 + Math.floor(rand() * 8);
        const t0 = Date.now();
        while (watch.seen - seenBefore < n && Date.now() - t0 < maxDelayMs * 3) await sleep(5);
        at = `after ${watch.seen - seenBefore} object changes (${n} wanted), ${Date.now() - t0} ms after the commit`;
        result.byTrigger.writes++;
      }
      const before = await status().catch(() => undefined);
      await engine.kill();
      const applying = before && (before.syncing || before.apps.some((s) => s.sync !== 'Synced' || s.health !== 'Healthy'));
      if (applying) result.midApply++;
      log(`kill ${k}: ${moves.join(', ')}, SIGKILL ${at}${applying ? ', during a sync' : ''}`);
      if (rand() < 0.25) {
        const back = bump.filter((a) => apps[a].prev !== undefined);
        for (const a of back) [apps[a].version, apps[a].prev] = [apps[a].prev, apps[a].version];
        if (back.length) {
          commit(`revert ${back.join(', ')}`);
          log(`  while down: revert ${back.map((a) => `${a} → ${apps[a].version}`).join(', ')}`);
        }
      }
      const t0 = Date.now();
      engine.start();
      try {
        await waitFor(`convergence after kill ${k}`, converged, { timeoutMs: convergeMs, intervalMs: 250 });
      } catch (err) {
        const now = await status().catch(() => undefined);
        const seen = (now?.apps ?? []).map((s) => `${s.name} ${s.sync}/${s.health} at ${s.version}${s.message ? ` (${s.message.slice(0, 160)})` : ''}`);
        // What the cluster says, to tell a slow control plane from a stale view of the engine.
        let cluster = '';
        try {
          cluster = kubectl('-n', namespace, 'get', 'deploy', '-o', 'jsonpath={range .items[*]}{.metadata.name} gen {.metadata.generation}/{.status.observedGeneration} ready {.status.readyReplicas}/{.spec.replicas}; {end}');
        } catch (e) {
          cluster = e.message;
        }
        diverged(k, 'converges', `${err.message.split(';')[0]}; ${seen.join('; ')}; the cluster: ${cluster}`);
        if (!o.keepGoing) break;
        // A failed spec is not retried until it changes: a new version of every app that did not converge, so the
        // next kills start from a converged environment again.
        const stuck = declared().filter((a) => {
          const s = now?.apps.find((x) => x.name === a);
          return !s || s.sync !== 'Synced' || s.health !== 'Healthy' || s.version !== String(apps[a].version);
        });
        const top2 = Math.max(...Object.values(apps).map((a) => a.version)) + 1;
        for (const a of stuck) [apps[a].prev, apps[a].version] = [apps[a].version, top2];
        commit(`recover: ${stuck.map((a) => `${a} → ${top2}`).join(', ')}`);
        log(`  recover: ${stuck.map((a) => `${a} → ${top2}`).join(', ')}`);
        try {
          await waitFor('convergence after the recovery commit', converged, { timeoutMs: convergeMs, intervalMs: 250 });
        } catch {
          diverged(k, 'converges', 'not even after a new version of the apps that had not converged');
          break;
        }
        continue;
      }
      const ms = Date.now() - t0;
      result.convergenceMs.push(ms);
      result.survived++;
      log(`  converged in ${ms} ms`);
      await check(k);
    }
  } finally {
    watch.stop();
    await engine.kill();
    await hooks.close();
    try {
      kubectl('delete', 'namespace', namespace, '--wait=false', '--ignore-not-found');
    } catch {
      /* already gone */
    }
    try {
      execFileSync(process.execPath, [bin, 'down', '--state-dir', state], { stdio: 'ignore', timeout: 60_000 });
    } catch {
      /* nothing ran */
    }
    if (!o.keepTmp && !process.env.KEELSON_KEEP_TMP) rmSync(tmp, { recursive: true, force: true });
  }
  log(`crash driver, kubernetes (seed ${seed}): ${result.survived}/${kills} kills survived (${result.midApply} during a sync), ${result.divergences.length} divergences`);
  return result;
}
