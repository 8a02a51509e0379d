/**
 * Chaos: a 2-replica app behind the proxy, one replica killed (SIGKILL) every 2 s for 60 s by `runChaos`, probed
 * through the proxy the whole time. Prints availability and time-to-ready figures (goal: ≥ 99.9 % of probes succeed,
 * recovery p95 < 2 s). `BENCH_CHAOS_SECONDS` shortens the run. `node bench/chaos.mjs [--out result.json]`.
 */
import { join } from 'node:path';
import { commitAll, dist, fmt, freePort, gitInit, main, md, publicPort, startKeelson, tempDir, tinyServer, waitFor, writeTree } from './lib.mjs';

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
    seconds,
  };
}, section);

/** The BENCHMARKS.md section. */
function section(r) {
  const { yes } = md;
  const pct = (x) => `${(x * 100).toFixed(3)} %`;
  const markdown = [
    '## Chaos: a replica killed every 2 s (`chaos`)',
    '',
    `\`keelson up\` with one app of 2 replicas (http readiness, period 1 s) behind the proxy; the chaos runner of`,
    `\`keelson chaos\` (\`runChaos\` from \`dist/chaos/chaos.js\`) kills one replica with SIGKILL every 2 s for ${r.seconds} s, never both at`,
    `once and never while the app is degraded (such intervals are skipped), and probes the app through the proxy every 5 ms`,
    `the whole time. Detection is the kill → the status API shows the replica not ready; recovery is the kill → ready again.`,
    `Goal (issue 4): ≥ 99.9 % of probes succeed, recovery p95 < 2 s.`,
    '',
    '| | Value |',
    '|---|---|',
    `| kills | ${r.kills} (${r.skipped} intervals skipped) |`,
    `| probes through the proxy | ${r.probes.ok} of ${r.probes.total} succeeded: ${pct(r.availability)} |`,
    `| failed probes | ${r.probes.failed}${Object.keys(r.probes.failures ?? {}).length ? ` (${Object.entries(r.probes.failures).map(([k, v]) => `${k} × ${v}`).join(', ')})` : ''} |`,
    `| time to detect, median / p95 | ${fmt(r.detect.medianMs)} / ${fmt(r.detect.p95Ms)} ms |`,
    `| time to ready again, median / p95 | ${fmt(r.recovery.medianMs)} / ${fmt(r.recovery.p95Ms)} ms |`,
    `| not ready again by the end | ${r.recovery.unrecovered} |`,
    `| restarts counted by the engine | ${r.restarts} |`,
    '',
    `Goals: availability ≥ 99.9 %: ${yes(r.goals.availability)}; recovery p95 < 2 s: ${yes(r.goals.recoveryP95)}.`,
  ].join('\n');
  const summary = [
    { measure: `chaos: probes succeeding, a kill every 2 s for ${r.seconds} s`, value: pct(r.availability), goal: '≥ 99.9 %', met: r.goals.availability, peer: '', ratio: '' },
    { measure: 'chaos: kill → ready again, p95', value: `${fmt(r.recovery.p95Ms)} ms`, goal: '< 2000 ms', met: r.goals.recoveryP95, peer: '', ratio: '' },
  ];
  return { markdown, summary };
}
