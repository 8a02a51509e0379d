/**
 * Chaos: a 2-replica app behind the proxy, one replica killed (SIGKILL) every 2 s for 60 s by `runChaos`, probed
 * through the proxy the whole time. Prints availability and time-to-ready figures (goal: ≥ 99.9 % of probes succeed,
 * recovery p95 < 2 s). `BENCH_CHAOS_SECONDS` shortens the run. `node bench/chaos.mjs [--out result.json]`.
 */
import { join } from 'node:path';
import { commitAll, dist, freePort, gitInit, main, publicPort, startKeelson, tempDir, tinyServer, waitFor, writeTree } from './lib.mjs';

const seconds = Number(process.env.BENCH_CHAOS_SECONDS ?? 60);

await main('chaos', async () => {
  const { runChaos, chaosMarkdown } = await import(dist('chaos/chaos.js'));
  const dir = tempDir('keelson-bench-chaos-');
  const ops = join(dir, 'ops');
  const port = await publicPort();
  writeTree(ops, {
    'apps/web.yaml': `apiVersion: keelson.dev/v1alpha1
kind: App
metadata:
  name: web
spec:
  version: "1.0.0"
  artifact:
    path: ../releases/web
  run:
    command: ["node", "server.js"]
  replicas: 2
  port: ${port}
  readiness:
    http: { path: /healthz }
    periodSeconds: 1
`,
    'environments/dev.yaml': 'apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: dev\nspec:\n  apps:\n    web: {}\n',
    'releases/web/server.js': tinyServer('1.0.0'),
  });
  gitInit(ops);
  commitAll(ops, 'web x2');
  const k = startKeelson({ repo: ops, stateDir: join(dir, 'state'), apiPort: await freePort(), logFile: join(dir, 'keelson.log') });
  await waitFor('web ready', async () => {
    const a = (await k.get('/api/v1/status?env=dev')).environments[0]?.apps[0];
    return a?.replicas.ready === 2;
  });
  const report = await runChaos({ server: k.api, env: 'dev', durationMs: seconds * 1000, intervalMs: 2000, kill: 1, dryRun: false, force: true, probeMs: 5, fetchJson: (path) => k.get(path) });
  console.log(chaosMarkdown(report));
  const availability = report.probes.availability ?? 0;
  console.log(`availability ${(availability * 100).toFixed(3)} % (goal ≥ 99.9 %), recovery p95 ${report.recovery.p95Ms} ms (goal < 2000 ms)`);
  return {
    kills: report.kills.length,
    probes: report.probes,
    availability,
    detect: report.detect,
    recovery: report.recovery,
    restarts: report.restarts,
    skipped: report.skipped.length,
    goals: { availability: availability >= 0.999, recoveryP95: (report.recovery.p95Ms ?? Infinity) < 2000 },
  };
});
