import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEngine, tickRepo, type EngineHarness } from '../../test/engine-harness.js';
import { appServer, commitAll, waitFor } from '../../test/helpers.js';
import { createApi } from '../api/app.js';
import { silentLogger } from '../log.js';
import { Metrics } from '../metrics/metrics.js';
import { processStartTime } from '../targets/local/process.js';
import type { Stamped } from '../core/events.js';

/** A brand-new app: its version 1 never gets ready (its /healthz answers 503), version 2 does. */
const webApp = (version: string) => `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: web }
spec:
  version: "${version}"
  artifact: { path: "../web-{version}" }
  run: { command: ["node", "server.js"] }
  readiness: { http: { path: /healthz } }
  rollout: { progressDeadlineSeconds: 2 }
`;

/** The harness's `tick` app, in an environment that now also runs `web`. */
const tickAndWeb = tickRepo['apps/tick.yaml'].replace('apps: { tick: {} }', 'apps: { tick: {}, web: {} }');

/** A first rollout that fails: reported Failed and Degraded, left running, not retried until a sync or a fix. */
describe('a failed first deploy', () => {
  let h: EngineHarness;
  let api: ReturnType<typeof createApi>;
  const events: Stamped[] = [];
  let failingPid: number;

  const webStatus = async () => {
    const res = await api.request('/api/v1/status?env=dev');
    return (await res.json()).environments[0].apps.find((a: { name: string }) => a.name === 'web');
  };
  const commit = async (files: Record<string, string>, message: string) => {
    for (const [path, content] of Object.entries(files)) writeFileSync(join(h.ops, path), content);
    const revision = commitAll(h.ops, message);
    await h.engine.refresh();
    return revision;
  };

  beforeAll(async () => {
    h = await startEngine(
      { ...tickRepo, 'web-1/server.js': appServer('1', { notReady: true }), 'web-2/server.js': appServer('2') },
      {
        prefix: 'keelson-first-deploy-',
        beforeStart: (parts) => {
          parts.bus.subscribe((e) => events.push(e));
          const metrics = new Metrics(parts.bus, { processes: () => 1, health: () => [] });
          api = createApi({ engine: parts.engine, store: parts.store, metrics, log: silentLogger() });
        },
      },
    );
  });

  afterAll(() => h?.stop());

  it('reports sync Failed with the reason and the last log lines, health Degraded, and keeps the replica', async () => {
    const revision = await commit({ 'apps/tick.yaml': tickAndWeb, 'apps/web.yaml': webApp('1') }, 'add web 1');
    const web = await waitFor('web Failed', async () => {
      const a = await webStatus();
      return a?.sync === 'Failed' && a.health === 'Degraded' && a;
    });
    expect(web.message).toContain('version 1 did not become ready within 2s');
    expect(web.message).toContain('listening on');
    expect(web.message).toContain('keelson sync --env dev --app web');
    expect(web).toMatchObject({ version: '1', desiredVersion: '1', replicas: { desired: 1, ready: 0, total: 1 } });
    failingPid = web.instances[0].pid;
    const sync = await waitFor('failed sync recorded', () => h.store.history({ env: 'dev' }).find((s) => s.revision === revision));
    expect(sync.result).toBe('Failed');
  });

  it('is not retried when the environment is reconciled again', async () => {
    const from = events.length;
    const revision = await commit({ 'README.md': 'unrelated\n' }, 'unrelated change');
    // The reconcile of the new revision records the unchanged apps at it; a sync would have started before.
    await waitFor('reconciled at the new revision', () => h.store.inventory('dev').find((r) => r.app === 'tick')?.revision === revision);
    expect(events.slice(from).filter((e) => e.type === 'sync.started' || e.type === 'replica.started')).toEqual([]);
    const plan = await (await api.request('/api/v1/environments/dev/plan')).json();
    expect(plan.plan.steps.find((s: { app: string }) => s.app === 'web')).toMatchObject({ action: 'blocked' });
    const web = await webStatus();
    expect(web).toMatchObject({ sync: 'Failed', health: 'Degraded' });
    expect(web.instances[0].pid).toBe(failingPid);
  });

  it('is retried by a manual sync', async () => {
    const outcome = await h.engine.sync('dev', 'web');
    expect(outcome.result).toBe('Failed');
    expect(outcome.message).toContain('did not become ready');
    expect(await webStatus()).toMatchObject({ sync: 'Failed', health: 'Degraded' });
  });

  it('goes Synced and Healthy with a fixing commit', async () => {
    const revision = await commit({ 'apps/web.yaml': webApp('2') }, 'web 2');
    const web = await waitFor('web Synced and Healthy', async () => {
      const a = await webStatus();
      return a?.sync === 'Synced' && a.health === 'Healthy' && a.version === '2' && a;
    });
    expect(web.replicas).toMatchObject({ desired: 1, ready: 1, total: 1 });
    const sync = await waitFor('fixing sync recorded', () => h.store.history({ env: 'dev' }).find((s) => s.revision === revision));
    expect(sync.result).toBe('Succeeded');
    await waitFor('the failing replica stopped', () => processStartTime(failingPid) === undefined);
  });
});
