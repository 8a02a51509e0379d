import { spawn } from 'node:child_process';
import { cpSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Authenticator, hashToken } from '../../api/auth.js';
import { createApi } from '../../api/app.js';
import { Engine } from '../../engine/engine.js';
import { EventBus, type Stamped } from '../../core/events.js';
import { silentLogger } from '../../log.js';
import { Metrics } from '../../metrics/metrics.js';
import { Store } from '../../store/store.js';
import { bin, commitAll, gitInit, root, tempDir, waitFor, writeTree } from '../../../test/helpers.js';
import { kubectl, kubernetesSuite, uniqueNamespace } from '../../../test/k8s.js';
import { helmUnavailable } from './helm.js';
import { KubernetesTarget } from './kubernetes-target.js';

/**
 * A Helm chart through the whole engine on the real control plane: commits to a git ops repository, the engine's
 * render and syncs, `keelson test` through the API and the CLI, and bad commits that change nothing live.
 */
kubernetesSuite('helm charts through the engine', () => {
  const tmp = tempDir('keelson-helm-engine-');
  const ops = join(tmp.dir, 'ops');
  const env = uniqueNamespace('k-helm-e2e');
  const namespace = env;
  const events: Stamped[] = [];
  const bus = new EventBus();
  bus.subscribe((e) => events.push(e));
  const tokens = { operator: 'op-token-helm', viewer: 'view-token-helm' };
  let store: Store;
  let engine: Engine;
  let target: KubernetesTarget;
  let api: ReturnType<typeof createApi>;
  let server: ReturnType<typeof serve>;
  let url: string;

  const files = (o: { greeting: string; image?: string | null; valuesFile?: string; listed?: boolean }) => ({
    'apps/web.yaml': `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: web }
spec:
  version: "1.0.0"
  manifests: ../charts/web
  rollout: { progressDeadlineSeconds: 20 }
  helm:
    values: { greeting: from-app }
    valuesFiles: [${o.valuesFile ?? 'values-big.yaml'}]
`,
    'envs/env.yaml': `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata: { name: ${env} }
spec:
  target: { kubernetes: { namespace: ${namespace} } }
  apps:
${o.listed === false ? '    {}\n' : `    web:\n      helm:\n        values: { greeting: ${o.greeting}${o.image === undefined ? '' : `, image: ${o.image}`} }\n`}`,
  });

  const commit = async (f: ReturnType<typeof files>, message: string, until: (e: Stamped) => boolean) => {
    const from = events.length;
    writeTree(ops, f);
    commitAll(ops, message);
    await engine.refresh();
    return waitFor(`after "${message}"`, () => events.slice(from).find(until), 120_000);
  };
  const synced = (e: Stamped) => e.type === 'sync.completed' && e.env === env;
  const greeting = () => kubectl('-n', namespace, 'get', 'deploy', 'web', '-o', 'jsonpath={.spec.template.spec.containers[0].env[0].value}');

  /** The CLI as a user runs it, as a child process (the API answers from this process meanwhile). */
  const cli = (...args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (b) => (stdout += b));
      child.stderr.on('data', (b) => (stderr += b));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });

  beforeAll(async () => {
    const why = helmUnavailable();
    if (why) throw new Error(why);
    store = new Store(join(tmp.dir, 'state'));
    cpSync(join(root, 'test', 'fixtures', 'helm'), join(ops, 'charts'), { recursive: true });
    writeTree(ops, files({ greeting: 'one' }));
    gitInit(ops);
    commitAll(ops, 'web chart');
    const log = silentLogger();
    target = new KubernetesTarget({ env, spec: { namespace }, store, bus, log, requeue: (e) => engine?.requeue(e) });
    engine = new Engine({ repo: ops, stateDir: join(tmp.dir, 'state'), log, store, bus, target, pollMs: 600_000 });
    const auth = new Authenticator(Object.entries(tokens).map(([role, t]) => ({ name: role, role: role as 'operator', sha256: hashToken(t) })));
    api = createApi({ engine, store, metrics: new Metrics(bus, { processes: () => 0, health: () => [] }), log, auth });
    server = await new Promise((resolve) => {
      const s = serve({ fetch: api.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s));
    });
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await engine.start();
    const first = await waitFor('first sync', () => events.find(synced), 120_000);
    expect(first).toMatchObject({ result: 'Succeeded' });
  }, 180_000);

  afterAll(async () => {
    server?.close();
    await engine?.stop().catch(() => undefined);
    await target?.close();
    kubectl('delete', 'namespace', namespace, '--wait=false', '--ignore-not-found');
    store?.close();
    tmp.cleanup();
  }, 120_000);

  it('deploys the chart; keelson test runs its test hooks (operator), through the API and the CLI', async () => {
    expect(greeting()).toBe('one');
    const denied = await api.request(`/api/v1/environments/${env}/apps/web/test`, { method: 'POST', headers: { authorization: `Bearer ${tokens.viewer}` } });
    expect(denied.status).toBe(403);
    const res = await api.request(`/api/v1/environments/${env}/apps/web/test`, { method: 'POST', headers: { authorization: `Bearer ${tokens.operator}` } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ ok: true, tests: [{ key: `Job/${namespace}/web-test-connection`, result: 'passed' }] });
    const r = await cli('test', '--env', env, '--app', 'web', '--server', url, '--token', tokens.operator);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(new RegExp(`^PASSED  Job/${namespace}/web-test-connection  succeeded\\n`));
    expect(r.code).toBe(0);
  });

  it('a values change in git upgrades the release; a missing values file or a template error changes nothing live', async () => {
    await commit(files({ greeting: 'two' }), 'greeting two', synced);
    expect(greeting()).toBe('two');

    const missing = await commit(files({ greeting: 'three', valuesFile: 'values-gone.yaml' }), 'missing values file', (e) => e.type === 'render.failed');
    expect(missing.type === 'render.failed' && missing.issues).toEqual([
      'apps/web.yaml:10:19: App "web": values file "values-gone.yaml" (charts/web/values-gone.yaml) does not exist; values files are relative to the chart directory',
    ]);
    expect(greeting()).toBe('two');

    // `image: null` deletes the chart's default; the template's `required` fails, naming the template and line.
    const failed = await commit(files({ greeting: 'four', image: null }), 'template error', synced);
    expect(failed).toMatchObject({ result: 'Failed' });
    expect(failed.type === 'sync.completed' && failed.message).toContain('helm template failed: execution error at (web/templates/deployment.yaml:19:20): values.image is required');
    const status = (await engine.status(env)).environments[0].apps.find((a) => a.name === 'web');
    expect(status?.message).toContain('web/templates/deployment.yaml:19:20');
    expect(greeting()).toBe('two');
  });

  it('removing the app from the environment runs its pre-delete hook, then prunes the release', async () => {
    await commit(files({ greeting: 'two', listed: false }), 'remove web', synced);
    await waitFor('release pruned', () => kubectl('-n', namespace, 'get', 'deploy', '-o', 'name') === '', 30_000);
    expect(kubectl('-n', namespace, 'get', 'job', 'web-pre-delete', '-o', 'jsonpath={.status.succeeded}')).toBe('1');
    rmSync(join(ops, 'charts'), { recursive: true, force: true });
  });
});
