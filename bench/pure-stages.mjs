/**
 * The pure stages on one ops repository, in a fresh process so the first render is as cold as an engine's:
 * render (first call, then warm calls), plan from nothing (all create) and plan with live = desired (all none).
 * Usage: node bench/pure-stages.mjs <ops dir> <warm runs>; prints one JSON line.
 */
import { performance } from 'node:perf_hooks';
import { dist, stats } from './lib.mjs';

const [root, warmArg = '5'] = process.argv.slice(2);
const warm = Number(warmArg);
const { renderRepository } = await import(dist('render/index.js'));
const { planEnvironment } = await import(dist('plan/plan.js'));
const { templateHash } = await import(dist('targets/local/spec-hash.js'));

const time = async (fn) => {
  const t = performance.now();
  const v = await fn();
  return [performance.now() - t, v];
};

const [renderFirst, first] = await time(() => renderRepository({ root }));
if (first.issues.length) throw new Error(`the repository has issues: ${JSON.stringify(first.issues.slice(0, 3))}`);
const desired = first.desired.environments[0];
const live = desired.apps.map((a) => ({
  name: a.name,
  spec: a,
  template: templateHash(a),
  version: a.version,
  revision: 'r',
  health: 'Healthy',
  message: '',
  replicas: { desired: a.replicas, ready: a.replicas, total: a.replicas, updated: a.replicas },
  instances: [],
  intact: true,
}));
const inventory = desired.apps.map((a) => a.name);
const planCold = () => planEnvironment({ desired, revision: 'r', live: [], inventory: [], failures: [], templateOf: templateHash });
const planNoop = () => planEnvironment({ desired, revision: 'r', live, inventory, failures: [], templateOf: templateHash });
const [planColdFirst, cold] = await time(planCold);
const [planNoopFirst, noop] = await time(planNoop);
if (cold.steps.some((s) => s.action !== 'create') || noop.steps.some((s) => s.action !== 'none')) throw new Error('unexpected plan');

const renderWarm = [];
const planColdWarm = [];
const planNoopWarm = [];
for (let i = 0; i < warm; i++) {
  renderWarm.push((await time(() => renderRepository({ root })))[0]);
  planColdWarm.push((await time(planCold))[0]);
  planNoopWarm.push((await time(planNoop))[0]);
}
console.log(
  JSON.stringify({
    apps: desired.apps.length,
    renderFirst,
    planColdFirst,
    planNoopFirst,
    renderWarm: stats(renderWarm),
    planColdWarm: stats(planColdWarm),
    planNoopWarm: stats(planNoopWarm),
  }),
);
