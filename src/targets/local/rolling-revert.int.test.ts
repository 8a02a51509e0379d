import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startEngine, type EngineHarness } from '../../../test/engine-harness.js';
import { appServer, commitAll, freePort, gatedServer, waitFor, webApp, webEnvironment, writeTree } from '../../../test/helpers.js';
import type { Stamped } from '../../core/events.js';
import type { RouteTable } from './supervisor.js';

/**
 * A rolling update whose new replica does not get ready in time is reverted by revertToStable (revert.ts): the old
 * version is back to its full count and ready before any replica of the new one leaves the proxy, so the app never
 * serves from fewer replicas than it declares. Real processes through the real proxy; every route table the
 * supervisor sends the proxy is recorded on the way.
 */
describe('a rolling update that does not get ready', { timeout: 240_000 }, () => {
  let h: EngineHarness | undefined;
  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });


  it('is reverted without dropping below the declared replicas: the old version back to full size before the new one leaves', async () => {
    const port = await freePort();
    const events: Stamped[] = [];
    h = await startEngine(
      {
        'apps/web.yaml': webApp(port, { replicas: 3, rollout: '    progressDeadlineSeconds: 5' }),
        'environments/dev.yaml': webEnvironment('1.0.0'),
        'releases/1.0.0/server.js': appServer('1.0.0'),
      },
      { prefix: 'keelson-revert-', beforeStart: (x) => x.bus.subscribe((e) => events.push(e)) },
    );
    const harness = h;
    const gate = join(harness.dir, 'gate');
    writeFileSync(gate, '');
    harness.bus.subscribe((e) => {
      if (e.type === 'replica.started' && e.version === '2.0.0' && !events.some((x) => x.type === 'replica.started' && x.version === '2.0.0' && x !== e)) writeFileSync(gate, String(e.pid));
    });
    // Every table the supervisor sends the proxy from now on: how many replicas serve web, and which versions.
    const tables: { ready: number; versions: string[] }[] = [];
    const proxy = harness.target.proxy;
    const publish = proxy.publish.bind(proxy);
    proxy.publish = (table: RouteTable) => {
      const web = table.routes.find((r) => r.key === 'dev/web');
      if (web) tables.push({ ready: web.backends.length, versions: web.backends.map((b) => b.version) });
      return publish(table);
    };

    writeTree(harness.ops, { 'environments/dev.yaml': webEnvironment('2.0.0'), 'releases/2.0.0/server.js': gatedServer(gate) });
    const revision = commitAll(harness.ops, 'web 2.0.0');
    void harness.engine.refresh();
    const rolledBack = await waitFor('rolled back', () => events.find((e) => e.type === 'app.rolledBack' && e.revision === revision), 120_000);
    expect((rolledBack as { message?: string }).message).toMatch(/^version 2\.0\.0 did not become ready within 5s/);
    const web = await waitFor('1.0.0 alone, 3 ready', async () => {
      const w = (await harness.engine.status('dev')).environments[0].apps.find((a) => a.name === 'web')!;
      const instances = w.instances as { version: string; ready: boolean }[];
      return instances.length === 3 && instances.every((i) => i.version === '1.0.0' && i.ready) && w;
    });
    expect(web.version).toBe('1.0.0');
    // The first 2.0.0 replica served (it replaced one old replica), and the app never had fewer than 3 serving.
    expect(tables.some((t) => t.versions.includes('2.0.0'))).toBe(true);
    expect(Math.min(...tables.map((t) => t.ready))).toBeGreaterThanOrEqual(3);
    expect(tables.at(-1)!.versions).toEqual(['1.0.0', '1.0.0', '1.0.0']);
  });
});
