/**
 * Commit → new version serving on the public port: Keelson with a webhook, Keelson polling at 1 s, and a classic
 * deploy script (fetch + checkout, stop the old process, start the new one, wait for the port) as the peer.
 * A steady keep-alive request loop runs during every switch and counts failed requests.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  commitAll,
  fmtStats,
  freePort,
  git,
  gitInit,
  main,
  publicPort,
  now,
  onCleanup,
  parseAnswer,
  pollUntil,
  requestLoop,
  sleep,
  startKeelson,
  stats,
  tempDir,
  tinyServer,
  waitFor,
  writeTree,
} from './lib.mjs';

const runs = Number(process.env.BENCH_RUNS ?? 7);
const deployScript = join(import.meta.dirname, 'peers', 'deploy.sh');

const appYaml = (port) => `apiVersion: keelson.dev/v1alpha1
kind: App
metadata:
  name: web
spec:
  version: "1.0.0"
  artifact:
    path: ../releases/web-{version}
  run:
    command: ["node", "server.js"]
  replicas: 2
  port: ${port}
  readiness:
    http: { path: /healthz }
    periodSeconds: 1
  rollout:
    progressDeadlineSeconds: 20
  terminationGracePeriodSeconds: 5
`;
const envYaml = (version) => `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata:
  name: dev
spec:
  target:
    local: {}
  apps:
    web:
      version: "${version}"
`;

/** One switch: the time split by the new process's own timestamps. */
function sample(t0, hit) {
  const a = parseAnswer(hit.body);
  return { total: hit.t - t0, beforeSpawn: a.startedAt - t0, appStart: a.readyAt - a.startedAt, afterReady: hit.t - a.readyAt, pollErrors: hit.errors };
}

function summarize(samples) {
  return {
    total: stats(samples.map((s) => s.total)),
    beforeSpawn: stats(samples.map((s) => s.beforeSpawn)),
    appStart: stats(samples.map((s) => s.appStart)),
    afterReady: stats(samples.map((s) => s.afterReady)),
    pollErrors: samples.reduce((n, s) => n + s.pollErrors, 0),
  };
}

async function keelson() {
  const dir = tempDir('keelson-bench-c2s-');
  const ops = join(dir, 'ops');
  const apiPort = await freePort();
  const appPort = await publicPort();
  const versions = Array.from({ length: 2 * runs + 1 }, (_, i) => `1.0.${i}`);
  const files = { 'apps/web.yaml': appYaml(appPort), 'environments/dev.yaml': envYaml(versions[0]) };
  for (const v of versions) files[`releases/web-${v}/server.js`] = tinyServer(v);
  writeTree(ops, files);
  gitInit(ops);
  commitAll(ops, 'web 1.0.0');
  const k = startKeelson({ repo: ops, stateDir: join(dir, 'state'), apiPort, poll: '1s', logFile: join(dir, 'keelson.log') });
  const web = async () => (await k.get('/api/v1/status')).environments.find((e) => e.name === 'dev')?.apps.find((a) => a.name === 'web');
  const settled = (v) => waitFor(`web ${v} rolled out`, async () => {
    const a = await web();
    return a?.version === v && a.sync === 'Synced' && a.health === 'Healthy' && a.replicas.total === 2 && a.replicas.ready === 2;
  });
  await settled(versions[0]);

  let next = 1;
  const mode = async (name, trigger) => {
    const loop = requestLoop(appPort);
    const samples = [];
    for (let i = 0; i < runs; i++) {
      // Uniform over a whole poll period, so the commit lands at a random phase of the 1 s poll timer.
      await sleep(200 + Math.random() * 1000);
      const v = versions[next++];
      writeFileSync(join(ops, 'environments/dev.yaml'), envYaml(v));
      commitAll(ops, `web ${v}`);
      const t0 = now();
      await trigger();
      const hit = await pollUntil(appPort, (b) => b.startsWith(`${v} `));
      samples.push(sample(t0, hit));
      await settled(v);
    }
    await loop.stop();
    const s = summarize(samples);
    console.log(`keelson ${name}: commit → serving ${fmtStats(s.total)}`);
    console.log(`  split: commit → new process ${fmtStats(s.beforeSpawn)}; app start → listening ${fmtStats(s.appStart)}; listening → first answer via proxy ${fmtStats(s.afterReady)}`);
    console.log(`  failed requests during the switches: ${loop.failures.length} of ${loop.total} (steady loop), ${s.pollErrors} failed polls`);
    return { ...s, requests: loop.total, failed: loop.failures.length, failures: [...new Set(loop.failures)].slice(0, 5) };
  };
  const webhook = await mode('webhook', async () => {
    const r = await fetch(`${k.api}/api/v1/webhooks/git`, { method: 'POST', body: '{}' }); // as a git host sends it: no token
    if (r.status !== 202) throw new Error(`webhook answered ${r.status} ${await r.text()}`);
  });
  const polling = await mode('poll 1s', async () => {});
  await k.stop();
  return { webhook, polling };
}

/** The peer: what a `git pull && systemctl restart app` deploy hook does, one process on the public port. */
async function deployScriptPeer() {
  const dir = tempDir('keelson-bench-peer-');
  const ops = join(dir, 'ops');
  const live = join(dir, 'live');
  const port = await publicPort();
  writeTree(ops, { 'app/server.js': tinyServer('p0') });
  gitInit(ops);
  commitAll(ops, 'p0');
  git(dir, 'clone', '-q', ops, live);
  const deploy = () =>
    new Promise((res, rej) => {
      const c = spawn('bash', [deployScript, live, String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      c.stderr.on('data', (d) => (err += d));
      c.on('exit', (code) => (code === 0 ? res() : rej(new Error(`deploy.sh exited ${code}: ${err}`))));
    });
  onCleanup(() => {
    try {
      process.kill(Number(readFileSync(join(live, 'app.pid'), 'utf8')), 'SIGKILL');
    } catch {
      /* not running */
    }
  });
  await deploy();
  await pollUntil(port, (b) => b.startsWith('p0 '));

  const loop = requestLoop(port);
  const samples = [];
  for (let i = 1; i <= runs; i++) {
    await sleep(200 + Math.random() * 500);
    writeTree(ops, { 'app/server.js': tinyServer(`p${i}`) });
    commitAll(ops, `p${i}`);
    const t0 = now();
    const done = deploy();
    const hit = await pollUntil(port, (b) => b.startsWith(`p${i} `));
    samples.push(sample(t0, hit));
    await done;
  }
  await loop.stop();
  const s = summarize(samples);
  console.log(`deploy script: commit → serving ${fmtStats(s.total)}`);
  console.log(`  split: commit → new process ${fmtStats(s.beforeSpawn)}; app start → listening ${fmtStats(s.appStart)}; listening → first answer ${fmtStats(s.afterReady)}`);
  console.log(`  failed requests during the switches: ${loop.failures.length} of ${loop.total} (steady loop), ${s.pollErrors} failed polls`);
  return { ...s, requests: loop.total, failed: loop.failures.length, failures: [...new Set(loop.failures)].slice(0, 5) };
}

main('commit-to-serving', async () => {
  const k = await keelson();
  const peer = await deployScriptPeer();
  return { id: 'commit-to-serving', runs, keelson: k, peer };
});
