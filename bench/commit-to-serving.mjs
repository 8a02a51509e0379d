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
  fmt,
  fmtStats,
  freePort,
  git,
  gitInit,
  main,
  md,
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
}, section);

/** The BENCHMARKS.md section. */
function section(r) {
  const { cells: ms, ratio, yes } = md;
  const w = r.keelson.webhook;
  const po = r.keelson.polling;
  const pe = r.peer;
  const markdown = [
    '## Commit → new version serving (`commit-to-serving`)',
    '',
    `One app, 2 replicas with an http readiness probe, behind Keelson's proxy on a public port. Each run commits a new`,
    `version to the ops repository (a temp git repo) and measures from \`git commit\` returning to the first HTTP answer`,
    `from the new version on the public port, polled every 10 ms over a new connection. With the webhook the bench POSTs`,
    `\`/api/v1/webhooks/git\` right after the commit (included in the time); with polling it only waits (\`--poll 1s\`,`,
    `so on average about 500 ms go to waiting for the next poll). Each commit comes 0.2–1.2 s (uniformly random) after the`,
    `previous rollout finished, so it lands at a random phase of the poll timer.`,
    `The test app answers with its process start (\`performance.timeOrigin\`) and the moment it listened, which splits`,
    `each time into the engine before the new process (fetch, render, plan, release, spawn), the app's own start, and the`,
    `engine after the app listens (readiness probe, routing table to the proxy).`,
    '',
    `The peer is a classic deploy hook (\`bench/peers/deploy.sh\`: \`git fetch\` + \`checkout\` into a directory, stop the old`,
    `process and wait for it to exit, start the new one, wait until the port answers), started right after the commit, as a`,
    `webhook receiver would; one process on the public port, like \`git pull && systemctl restart app\`.`,
    `During every switch a steady request loop (keep-alive, 4 connections, a request every 5 ms) counts failed requests.`,
    '',
    `Goal (issue 2): commit → serving < 1.5 s with the webhook, 0 failed requests. ${r.runs} runs each; times in ms.`,
    '',
    '| | Median | Min | Max | n |',
    '|---|---|---|---|---|',
    `| Keelson, webhook: commit → serving | ${ms(w.total)} |`,
    `| — commit → new process started | ${ms(w.beforeSpawn)} |`,
    `| — app start → listening (the app itself) | ${ms(w.appStart)} |`,
    `| — listening → first answer through the proxy | ${ms(w.afterReady)} |`,
    `| Keelson, polling 1 s: commit → serving | ${ms(po.total)} |`,
    `| — commit → new process started | ${ms(po.beforeSpawn)} |`,
    `| — app start → listening (the app itself) | ${ms(po.appStart)} |`,
    `| — listening → first answer through the proxy | ${ms(po.afterReady)} |`,
    `| Deploy script: commit → serving | ${ms(pe.total)} |`,
    `| — commit → new process started (pull, stop old) | ${ms(pe.beforeSpawn)} |`,
    `| — app start → listening (the app itself) | ${ms(pe.appStart)} |`,
    `| — listening → first answer | ${ms(pe.afterReady)} |`,
    '',
    '| Failed requests during the switches | Steady loop | 10 ms poller |',
    '|---|---|---|',
    `| Keelson, webhook | ${w.failed} of ${w.requests} | ${w.pollErrors} |`,
    `| Keelson, polling | ${po.failed} of ${po.requests} | ${po.pollErrors} |`,
    `| Deploy script | ${pe.failed} of ${pe.requests}${pe.failures.length ? ` (${pe.failures.join(', ')})` : ''} | ${pe.pollErrors} |`,
    '',
    `Goals: commit → serving < 1.5 s with the webhook: ${yes(w.total.median < 1500)}; 0 failed requests: ${yes(w.failed + po.failed === 0)}.`,
    `Deploy script ÷ Keelson (webhook), commit → serving: ${ratio(pe.total, w.total)}. The script has no readiness gate and no`,
    `proxy hop, but no process listens between stopping the old one and the new one's start, which is where its failed`,
    `requests come from; Keelson starts each new replica next to the old ones, routes to it once ready, then drains an old one.`,
  ].join('\n');
  const summary = [
    { measure: 'commit → new version serving, webhook', value: `${fmt(w.total.median)} ms`, goal: '< 1500 ms', met: w.total.median < 1500, peer: `deploy script ${fmt(pe.total.median)} ms`, ratio: ratio(pe.total, w.total) },
    { measure: 'commit → new version serving, polling every 1 s', value: `${fmt(po.total.median)} ms`, goal: '', met: null, peer: '', ratio: '' },
    { measure: 'failed requests while switching versions', value: `${w.failed + po.failed} of ${w.requests + po.requests}`, goal: '0', met: w.failed + po.failed === 0, peer: `deploy script ${pe.failed} of ${pe.requests}`, ratio: '' },
  ];
  return { markdown, summary };
}
