import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { resolveUpConfig } from '../cli/config.js';
import { startEngine, tickRepo, type EngineHarness } from '../../test/engine-harness.js';
import { commitAll, tempDir, writeTree } from '../../test/helpers.js';

describe('engine policy', () => {
  let h: EngineHarness | undefined;
  const tmp = tempDir('keelson-policy-config-');
  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });
  afterAll(() => tmp.cleanup());

  it('is the engine configuration\'s, not git\'s: a commit moving an environment to a forbidden target is refused and the running version keeps running', async () => {
    // The operator's keelson.yaml: environment dev may run local apps only.
    const config = join(tmp.dir, 'keelson.yaml');
    writeFileSync(config, ['policy:', '  rules:', '    - environments: [dev]', '      targets: [local]', '  default:', '    targets: []', ''].join('\n'));
    const { policy } = resolveUpConfig({ repo: tmp.dir, config });
    h = await startEngine(tickRepo, { prefix: 'keelson-policy-engine-', engine: { policy } });
    const { engine, ops } = h;
    const before = (await engine.status()).environments[0];
    const running = before.apps[0];
    expect(running).toMatchObject({ name: 'tick', version: '1', health: 'Healthy' });

    // A committer moves dev to Kubernetes with a host kubeconfig, and commits a permissive "policy" of their own.
    writeTree(ops, {
      'apps/tick.yaml': tickRepo['apps/tick.yaml']
        .replace('version: "1"', 'version: "2"')
        .replace('  apps: { tick: {} }', '  target: { kubernetes: { namespace: dev, kubeconfig: /root/.kube/config } }\n  apps: { tick: {} }'),
      'keelson.yaml': 'policy:\n  default:\n    targets: [local, kubernetes]\n    allowKubeconfigPaths: true\n',
    });
    const bad = commitAll(ops, 'run dev on kubernetes');
    await engine.refresh();

    const status = await engine.status();
    const env = status.environments[0];
    expect(env.error?.revision).toBe(bad);
    expect(env.error?.issues.filter((i) => i.includes('policy'))).toEqual([
      'apps/tick.yaml:13:13: refused by policy rule #1 (environments: dev): environment "dev" may not use the kubernetes target (allowed: local)',
      'apps/tick.yaml:13:55: refused by policy rule #1 (environments: dev): environment "dev" may not name a kubeconfig file on the engine\'s host; refer to a cluster of the engine\'s configuration instead (target.kubernetes.cluster)',
    ]);
    // Still the last good revision, on the local target, the same process.
    expect(env.revision).toBe(before.revision);
    expect(env.apps[0]).toMatchObject({ name: 'tick', version: '1', health: 'Healthy' });
    expect(env.apps[0].instances).toEqual(running.instances);
  });
});
