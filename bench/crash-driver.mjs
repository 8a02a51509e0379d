#!/usr/bin/env node
/**
 * The crash driver as a benchmark (issue 10, item 3): a real `keelson up` SIGKILLed KILLS times at seeded random
 * moments of blue/green and canary rollouts and a preSync hook (test/crash-driver.mjs), then ROLLING_KILLS times
 * during rolling updates alone; after each kill it is restarted and checked (one version per app, no orphan process,
 * inventory equal to live, history intact, no failed request through the proxy). Prints and writes kills survived,
 * divergences found (with the seed to replay them), failed requests and the median time from restart to converged.
 *
 *   npm run build && node bench/crash-driver.mjs [--kills 30] [--rolling-kills 12] [--seed N]
 */
import { parseArgs } from 'node:util';
import { runCrashDriver } from '../test/crash-driver.mjs';
import { fmt, main, md, stats } from './lib.mjs';

const { values } = parseArgs({ options: { kills: { type: 'string', default: '30' }, 'rolling-kills': { type: 'string', default: '12' }, seed: { type: 'string' }, out: { type: 'string' }, 'no-write': { type: 'boolean' } } });
const seed = values.seed ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);

await main(
  'crash-driver',
  async () => {
    const runs = [];
    const plan = [
      { name: 'blue/green + canary + preSync hook', strategies: ['blueGreen', 'canary'], kills: Number(values.kills) },
      { name: 'rolling (4 replicas)', strategies: ['rolling'], replicas: 4, kills: Number(values['rolling-kills']) },
    ].filter((p) => p.kills > 0);
    for (const p of plan) {
      const r = await runCrashDriver({ seed, kills: p.kills, strategies: p.strategies, replicas: p.replicas, keepGoing: true });
      runs.push({ name: p.name, seed, kills: p.kills, survived: r.survived, midRollout: r.midRollout, divergences: r.divergences, requests: r.requests, failedRequests: r.failedRequests, failureKinds: [...new Set(r.failures.map((f) => f.error))].slice(0, 5), convergence: stats(r.convergenceMs) });
    }
    return { seed, runs };
  },
  section,
);

function section(r) {
  const rows = r.runs.map((x) => `| ${x.name} | ${x.survived} of ${x.kills} | ${x.midRollout} | ${x.divergences.length} | ${x.failedRequests} of ${x.requests}${x.failureKinds.length ? ` (${x.failureKinds.join('; ')})` : ''} | ${md.cells(x.convergence)} |`);
  const found = r.runs.flatMap((x) => x.divergences.map((d) => `- ${x.name}, kill ${d.kill}${d.app ? `, app \`${d.app}\`` : ''}: ${d.check}: ${d.detail.replace(/\n/g, ' ').slice(0, 300)}`));
  const markdown = [
    '## Crash driver: SIGKILL of the engine at random moments (`crash-driver`)',
    '',
    '`keelson up` (a real child process, local target, apps of 2 replicas (rolling: 4) behind the proxy, a request loop per app on',
    'loopback for the whole run) is killed with SIGKILL at a random moment (seeded PRNG) within 5 s of a commit that',
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
    found.length ? `Divergences found:\n\n${found.slice(0, 20).join('\n')}${found.length > 20 ? `\n- … and ${found.length - 20} more` : ''}` : 'No divergence found.',
  ].join('\n');
  const summary = r.runs.map((x) => ({
    measure: `crash driver (${x.name}): divergences / failed requests after ${x.kills} SIGKILLs`,
    value: `${x.divergences.length} / ${x.failedRequests} (converged median ${fmt(x.convergence.median)} ms)`,
    goal: '0 / 0',
    met: x.divergences.length === 0 && x.failedRequests === 0,
    peer: '',
    ratio: '',
  }));
  return { markdown, summary };
}
