#!/usr/bin/env node
/**
 * The crash driver as a benchmark (issue 10, item 3): a real `keelson up` SIGKILLed at seeded random moments, then
 * restarted and checked, in four modes:
 * - KILLS times during blue/green and canary rollouts and a preSync hook on the local target, then ROLLING_KILLS
 *   times during rolling updates alone (test/crash-driver.mjs: one version per app, no orphan process, inventory
 *   equal to live, history intact, no failed request through the proxy);
 * - COMMIT_KILLS times, with the git commands it runs, during its own commits to the ops repository: version
 *   automation and rollbacks through the API (test/crash-driver-commits.mjs: no stale lock, fsck clean, whole
 *   commits made once, the next commit goes through, convergence to HEAD);
 * - K8S_KILLS times during applies to the test control plane (test/crash-driver-k8s.mjs: one version per app,
 *   inventory equal to live, hooks run, history intact); needs KUBECONFIG (`eval "$(scripts/testenv.sh env)"`).
 * Prints and writes kills survived, divergences found (with the seed to replay them) and the time from restart to
 * converged.
 *
 *   npm run build && node bench/crash-driver.mjs [--kills 30] [--rolling-kills 12] [--commit-kills 12] [--k8s-kills 12] [--seed N]
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { runCrashDriver } from '../test/crash-driver.mjs';
import { runCommitCrashDriver } from '../test/crash-driver-commits.mjs';
import { runKubernetesCrashDriver } from '../test/crash-driver-k8s.mjs';
import { fmt, main, md, stats } from './lib.mjs';

const { values } = parseArgs({
  options: {
    kills: { type: 'string', default: '30' },
    'rolling-kills': { type: 'string', default: '12' },
    'commit-kills': { type: 'string', default: '12' },
    'k8s-kills': { type: 'string', default: '12' },
    seed: { type: 'string' },
    out: { type: 'string' },
    'no-write': { type: 'boolean' },
  },
});
const seed = values.seed ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);

await main(
  'crash-driver',
  async () => {
    const runs = [];
    const plan = [
      { name: 'blue/green + canary + preSync hook', strategies: ['blueGreen', 'canary'], kills: Number(values.kills) },
      { name: 'rolling (4 replicas)', strategies: ['rolling'], replicas: 4, kills: Number(values['rolling-kills']), maxDelayMs: 2500 },
    ].filter((p) => p.kills > 0);
    for (const p of plan) {
      const r = await runCrashDriver({ seed, kills: p.kills, strategies: p.strategies, replicas: p.replicas, maxDelayMs: p.maxDelayMs, keepGoing: true });
      runs.push({ name: p.name, seed, kills: p.kills, survived: r.survived, midRollout: r.midRollout, divergences: r.divergences, requests: r.requests, failedRequests: r.failedRequests, failureKinds: [...new Set(r.failures.map((f) => f.error))].slice(0, 5), convergence: stats(r.convergenceMs) });
    }
    const more = [];
    const commitKills = Number(values['commit-kills']);
    if (commitKills > 0) {
      const r = await runCommitCrashDriver({ seed, kills: commitKills, keepGoing: true });
      more.push({
        name: 'engine commits (version automation, API rollbacks)',
        kills: commitKills,
        survived: r.survived,
        during: `${r.kills - r.pushedBeforeKill} before the push landed (${r.byKind.auto} after a release, ${r.byKind.rollback} after a rollback request)`,
        divergences: r.divergences,
        convergence: stats(r.convergenceMs),
      });
    }
    const k8sKills = Number(values['k8s-kills']);
    if (k8sKills > 0) {
      if (!process.env.KUBECONFIG || !existsSync(process.env.KUBECONFIG)) {
        more.push({ name: 'Kubernetes applies', kills: k8sKills, skipped: 'no control plane: run `eval "$(scripts/testenv.sh env)"` first' });
      } else {
        const r = await runKubernetesCrashDriver({ seed, kills: k8sKills, keepGoing: true });
        more.push({
          name: 'Kubernetes applies (rolling, canary, blue/green, hooks, prunes)',
          kills: k8sKills,
          survived: r.survived,
          during: `${r.midApply} during a sync (${r.byTrigger.delay} after a delay, ${r.byTrigger.writes} after N object changes)`,
          divergences: r.divergences,
          convergence: stats(r.convergenceMs),
        });
      }
    }
    return { seed, runs, more };
  },
  section,
);

function section(r) {
  const rows = r.runs.map((x) => `| ${x.name} | ${x.survived} of ${x.kills} | ${x.midRollout} | ${x.divergences.length} | ${x.failedRequests} of ${x.requests}${x.failureKinds.length ? ` (${x.failureKinds.join('; ')})` : ''} | ${md.cells(x.convergence)} |`);
  const moreRows = (r.more ?? []).map((x) => (x.skipped ? `| ${x.name} | not run: ${x.skipped} | | | | | | |` : `| ${x.name} | ${x.survived} of ${x.kills} | ${x.during} | ${x.divergences.length} | ${md.cells(x.convergence)} |`));
  const all = [...r.runs, ...(r.more ?? []).filter((x) => !x.skipped)];
  const found = all.flatMap((x) => x.divergences.map((d) => `- ${x.name}, kill ${d.kill}${d.app ? `, app \`${d.app}\`` : ''}: ${d.check}: ${d.detail.replace(/\n/g, ' ').slice(0, 300)}`));
  const markdown = [
    '## Crash driver: SIGKILL of the engine at random moments (`crash-driver`)',
    '',
    '`keelson up` (a real child process, local target, apps of 2 replicas (rolling: 4) behind the proxy, a request loop per app on',
    'loopback for the whole run) is killed with SIGKILL at a random moment (seeded PRNG) within 5 s (rolling: 2.5 s) of a commit that',
    'bumps one or more apps (now and then a revert, or a revert committed while the engine is down), then restarted. After each restart, once the engine says every app is Synced, the driver',
    'checks: one version per app; every replica the store records alive and shown live, no process with its cwd in the',
    'releases that the store does not know; the inventory naming the live version; the store intact and the history',
    'listing every completed sync. "Kills during a rollout": the status just before the kill still showed a bumped app',
    'on another version (the others landed after the rollout finished, or before the engine fetched the commit).',
    '"Converged" is from the restart until every app is Synced and Healthy at its desired',
    `version. Seed ${r.seed} (replay: \`node bench/crash-driver.mjs --seed ${r.seed}\`). Goal (issue 10): 0 divergences, 0 failed requests.`,
    '',
    '| Rollouts killed | Kills survived | Kills during a rollout | Divergences | Failed requests | Converged: median ms | min | max | n |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
    ...(moreRows.length
      ? [
          '**Engine commits** (`test/crash-driver-commits.mjs`): a bare ops repository; the engine runs version automation',
          '(`--auto-update-interval 1s`, a `directory` source) and answers rollbacks through the API. The driver pushes a new',
          'release, or bumps an app and asks for its rollback, then kills the engine **with the git commands it runs** (as',
          'when its container dies) after a random delay or as soon as it runs `git worktree add`, `commit` or `push`. Checks: no',
          '`*.lock` left in the ops repository and `git fsck --full` clean; every engine commit whole (its trailer present)',
          'and no bump committed twice; the engine converged to HEAD with the newest release committed after the restart',
          '(the next commit goes through; a rollback after the last kill is answered 200); the store intact.',
          '**Kubernetes applies** (`test/crash-driver-k8s.mjs`): an environment on the test control plane with `web`',
          '(rolling, a postSync http hook), `api` (canary), `front` (blue/green), `cfg` (ConfigMaps, one renamed every',
          'third version so prune has work, a Secret, an Argo CD PostSync Job carrying the version) and `tmp` (added and',
          'removed: pruned whole); a commit bumps some apps, the kill lands after a random delay or after a random number',
          '(1–8) of object changes seen in the namespace. Checks: one Deployment per image app at the desired image with',
          'every pod updated and ready, no pod on another image; every live object labelled for the environment (hooks',
          'apart) in its app\'s record with the applied hash recorded, every recorded object live, no pending marker left,',
          'records and the engine\'s inventory naming exactly the declared apps at their versions; the PostSync Job ran for',
          'the desired version and the postSync hook was called for it; the store and history intact.',
          '',
          'Found and fixed by these modes (each with a test that failed before): a Secret written with `stringData` never',
          'matched the live Secret (the API server keeps only `data`), so its app was applied again, its PostSync hooks run',
          'again, at every reconcile (`secret-stringdata.int.test.ts`); an engine killed during its own commit\'s `git worktree',
          'add` left the worktree\'s metadata locked with a null HEAD in its clone, and every later fetch failed ("bad object',
          'worktrees/…/HEAD") until the state directory was cleaned by hand (`git-source.int.test.ts`). A first Kubernetes run',
          'with 60 s rollout deadlines on a control plane saturated by other benchmarks (about 2000 Deployments, load 10 on 2',
          'cores) had rollouts miss their deadline after a restart ("1 of 2 replicas ready at the deadline", "waiting for the',
          'rollout to start"); the driver now gives rollouts 180 s and records the cluster\'s own view when it does not converge.',
          '',
          '| Mode | Kills survived | Where the kills landed | Divergences | Converged: median ms | min | max | n |',
          '|---|---|---|---|---|---|---|---|',
          ...moreRows,
          '',
        ]
      : []),
    found.length ? `Divergences found:\n\n${found.slice(0, 20).join('\n')}${found.length > 20 ? `\n- … and ${found.length - 20} more` : ''}` : 'No divergence found.',
  ].join('\n');
  const summary = [
    ...r.runs.map((x) => ({
      measure: `crash driver (${x.name}): divergences / failed requests after ${x.kills} SIGKILLs`,
      value: `${x.divergences.length} / ${x.failedRequests} (converged median ${fmt(x.convergence.median)} ms)`,
      goal: '0 / 0',
      met: x.divergences.length === 0 && x.failedRequests === 0,
      peer: '',
      ratio: '',
    })),
    ...(r.more ?? [])
      .filter((x) => !x.skipped)
      .map((x) => ({
        measure: `crash driver (${x.name}): divergences after ${x.kills} SIGKILLs`,
        value: `${x.divergences.length} (converged median ${fmt(x.convergence.median)} ms)`,
        goal: '0',
        met: x.divergences.length === 0,
        peer: '',
        ratio: '',
      })),
  ];
  return { markdown, summary };
}
