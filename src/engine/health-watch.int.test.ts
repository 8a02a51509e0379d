import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEngine, type EngineHarness } from '../../test/engine-harness.js';
import { appServer, commitAll } from '../../test/helpers.js';
import type { Stamped } from '../core/events.js';
import { HealthWatch } from './health-watch.js';

const repo = (release: string) => ({
  'apps.yaml': `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: web }
spec:
  version: "1"
  artifact: { path: ${release} }
  run: { command: ["node", "server.js"] }
  readiness: { http: { path: /healthz } }
  rollout: { progressDeadlineSeconds: 3 }
---
apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata: { name: dev }
spec:
  apps: { web: {} }
`,
  'good/server.js': appServer('1'),
  'crash/server.js': appServer('1', { crash: 'fatal: no config' }),
});

describe('HealthWatch', () => {
  let h: EngineHarness;
  let watch: HealthWatch;
  const events: Stamped[] = [];

  beforeAll(async () => {
    h = await startEngine(repo('good'), {
      prefix: 'keelson-health-',
      beforeStart: (parts) => {
        parts.bus.subscribe((e) => events.push(e));
        watch = new HealthWatch(parts.bus, parts.engine, { debounceMs: 20 });
        watch.start();
      },
    });
  });

  afterAll(async () => {
    watch.stop();
    await h.stop();
  });

  it('publishes health.changed when an app turns Degraded, with the reason', async () => {
    // The same version, now crash-looping: the first deploy of a new release dir fails and keeps restarting.
    writeFileSync(join(h.ops, 'apps.yaml'), repo('crash')['apps.yaml']);
    commitAll(h.ops, 'crash');
    await h.engine.refresh();
    const degraded = await h.bus.waitFor((e) => e.type === 'health.changed' && e.app === 'web' && e.to === 'Degraded', 30_000);
    expect(degraded).toMatchObject({ env: 'dev', app: 'web', type: 'health.changed' });
    expect((degraded as any).message).toMatch(/crash-looping|not ready/);
    expect(events.filter((e) => e.type === 'health.changed').every((e: any) => e.from !== e.to)).toBe(true);
  });
});
