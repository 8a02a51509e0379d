import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { HookSet } from '../../core/delivery.js';
import type { DesiredApp } from '../../core/model.js';
import type { AnalysisMetric, RolloutSpec } from '../../core/rollout.js';
import { EventBus, type Stamped } from '../../core/events.js';
import { applyWithHooks } from '../../hooks/around-apply.js';
import { silentLogger } from '../../log.js';
import { Store } from '../../store/store.js';
import { tempDir, waitFor, writeTree } from '../../../test/helpers.js';
import { deploymentYaml, kubectl, kubectlWithInput, kubernetesSuite, uniqueNamespace } from '../../../test/k8s.js';
import { KubernetesTarget } from './kubernetes-target.js';

/** Blue/green and canary through the step machine with two Deployments; deploy hook exec steps as Jobs. */
kubernetesSuite('kubernetes target: progressive rollouts and hook Jobs', () => {
  const tmp = tempDir('keelson-k8s-prog-');
  const events: Stamped[] = [];
  const bus = new EventBus();
  bus.subscribe((e) => events.push(e));
  let store: Store;
  const targets: KubernetesTarget[] = [];
  // The analysis endpoint: a real HTTP server whose answer the test decides.
  let status = 200;
  let server: Server;
  let checkUrl = '';

  beforeAll(async () => {
    store = new Store(join(tmp.dir, 'state'));
    server = createServer((_req, res) => res.writeHead(status).end(String(status)));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    checkUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/check`;
  });
  afterAll(async () => {
    for (const t of targets) {
      await t.close();
      kubectl('delete', 'namespace', t.namespace, '--wait=false', '--ignore-not-found');
    }
    await new Promise((r) => server.close(r));
    store.close();
    tmp.cleanup();
  });

  const newTarget = (prefix: string) => {
    const namespace = uniqueNamespace(prefix);
    const t = new KubernetesTarget({ env: namespace, spec: { namespace }, store, bus, log: silentLogger(), requeue: () => undefined });
    targets.push(t);
    return { t, env: namespace, namespace };
  };

  const metric = (name: string, over: Partial<AnalysisMetric> = {}): AnalysisMetric => ({
    name,
    intervalSeconds: 1,
    count: 1,
    failureLimit: 0,
    consecutiveErrorLimit: 4,
    inconclusiveLimit: 0,
    timeoutSeconds: 5,
    http: { url: checkUrl, method: 'GET', expectStatus: [200] },
    ...over,
  });

  const app = (env: string, version: string, rollout: RolloutSpec, over: Partial<DesiredApp> = {}): DesiredApp => ({
    name: 'web',
    env,
    version,
    artifact: {},
    command: [],
    vars: { GREETING: 'hello' },
    replicas: 1,
    port: 8080,
    dependsOn: [],
    progressDeadlineSeconds: 20,
    terminationGracePeriodSeconds: 5,
    source: { file: 'apps/web.yaml', line: 1, col: 1 },
    image: `registry.example/web:${version}`,
    rollout,
    ...over,
  });
  const ctx = (revision: string, signal?: AbortSignal) => ({ revision: revision.repeat(40).slice(0, 40), checkoutDir: tmp.dir, signal });

  /** Deployment name → [spec.replicas, ready replicas] of the app's Deployments. */
  const deployments = (namespace: string): Record<string, [number, number]> => {
    const out: Record<string, [number, number]> = {};
    const text = kubectl('-n', namespace, 'get', 'deploy', '-o', 'jsonpath={range .items[*]}{.metadata.name} {.spec.replicas} {.status.readyReplicas}{"\\n"}{end}');
    for (const line of text.split('\n').filter(Boolean)) {
      const [name, want, ready] = line.split(' ');
      out[name] = [Number(want), Number(ready || 0)];
    }
    return out;
  };
  const selectorSet = (namespace: string) => kubectl('-n', namespace, 'get', 'svc/web', '-o', 'jsonpath={.spec.selector.keelson\\.dev/set}');
  const setOfDeployment = (name: string) => name.replace(/^web-/, '');

  it('blue/green switches the Service selector at once, only after the pre-promotion analysis passed', async () => {
    const { t, env, namespace } = newTarget('k-bg');
    const bg = (post: boolean): RolloutSpec => ({
      strategy: 'blueGreen',
      blueGreen: { autoPromotionEnabled: true, scaleDownDelaySeconds: 1, prePromotionAnalysis: { metrics: [metric('pre')] }, ...(post ? { postPromotionAnalysis: { metrics: [metric('post')] } } : {}) },
    });
    const first = await t.apply(app(env, '1.0.0', bg(true), { replicas: 2 }), ctx('a'));
    expect(first).toMatchObject({ ok: true, action: 'created' });
    const [blue] = Object.keys(deployments(namespace));
    expect(blue).toMatch(/^web-[0-9a-f]{10}$/);
    expect(selectorSet(namespace)).toBe(setOfDeployment(blue));

    // Every selector the Service ever had, from a watch: one set at a time, never none and never both.
    const seen: string[] = [];
    const w = spawn('kubectl', ['-n', namespace, 'get', 'svc/web', '--watch', '--output-watch-events=false', '-o', 'jsonpath={.spec.selector.keelson\\.dev/set}{"\\n"}'], { env: process.env });
    w.stdout.on('data', (b: Buffer) => seen.push(...b.toString().split('\n').filter(Boolean)));
    await waitFor('watch started', () => seen.length > 0, 10_000);

    status = 500; // the pre-promotion analysis fails: the switch never happens
    const from = events.length;
    const failed = await t.apply(app(env, '2.0.0', bg(true), { replicas: 2 }), ctx('b'));
    expect(failed).toMatchObject({ ok: false, rolledBack: true });
    expect(failed.ok === false && failed.message).toMatch(/pre-promotion analysis failed.*all traffic back on 1\.0\.0/);
    const mine = events.slice(from).filter((e) => 'env' in e && e.env === env);
    expect(mine.some((e) => e.type === 'rollout.aborted')).toBe(true);
    expect(mine.some((e) => e.type === 'rollout.completed')).toBe(false);
    expect(selectorSet(namespace)).toBe(setOfDeployment(blue));
    await waitFor('green deleted', () => Object.keys(deployments(namespace)).join() === blue, 20_000);
    expect(deployments(namespace)[blue]).toEqual([2, 2]);

    status = 200;
    const ok = await t.apply(app(env, '2.0.0', bg(true), { replicas: 2 }), ctx('c'));
    expect(ok).toMatchObject({ ok: true });
    const green = await waitFor('blue deleted', () => {
      const names = Object.keys(deployments(namespace));
      return names.length === 1 && names[0] !== blue && names[0];
    }, 20_000);
    expect(selectorSet(namespace)).toBe(setOfDeployment(green));
    await waitFor('watch caught up', () => seen.at(-1) === setOfDeployment(green), 10_000);
    w.kill();
    // Atomic: every observed selector named exactly one of the two sets.
    expect(seen.every((s) => s === setOfDeployment(blue) || s === setOfDeployment(green))).toBe(true);
    expect([...new Set(seen)]).toEqual([setOfDeployment(blue), setOfDeployment(green)]);
    // Inventory knows the new set only; re-applying changes nothing.
    const [live] = await t.observe(env);
    expect(live.objects?.map((o) => o.key).sort()).toEqual([`Deployment/${namespace}/${green}`, `Service/${namespace}/web`]);
    const again = await t.apply(app(env, '2.0.0', bg(true), { replicas: 2 }), ctx('c'));
    expect(again.objects?.every((o) => o.action === 'unchanged')).toBe(true);
  });

  it('blue/green switches back after the switch when the post-promotion analysis fails', async () => {
    const { t, env, namespace } = newTarget('k-bg2');
    const spec: RolloutSpec = { strategy: 'blueGreen', blueGreen: { autoPromotionEnabled: true, scaleDownDelaySeconds: 30, postPromotionAnalysis: { metrics: [metric('post')] } } };
    expect((await t.apply(app(env, '1.0.0', spec), ctx('a'))).ok).toBe(true);
    const [blue] = Object.keys(deployments(namespace));
    status = 500;
    // Seen while the post-promotion analysis runs: traffic is on green, blue still runs.
    const during = new Promise<{ selector: string; deployments: Record<string, [number, number]> }>((resolve) => {
      const off = bus.subscribe((e) => {
        if (e.type === 'rollout.analysis' && e.env === env && e.analysis === 'post-promotion' && e.metric === 'post') {
          off();
          resolve({ selector: selectorSet(namespace), deployments: deployments(namespace) });
        }
      });
    });
    const failed = await t.apply(app(env, '2.0.0', spec), ctx('b'));
    status = 200;
    expect(failed).toMatchObject({ ok: false, rolledBack: true });
    const seen = await during;
    const green = Object.keys(seen.deployments).find((n) => n !== blue)!;
    expect(seen.selector).toBe(setOfDeployment(green));
    expect(seen.deployments[blue]).toEqual([1, 1]);
    expect(selectorSet(namespace)).toBe(setOfDeployment(blue));
    await waitFor('green deleted', () => Object.keys(deployments(namespace)).join() === blue, 20_000);
  });

  it('canary: replica ratio per step, pauses until promoted, then the canary is the app', async () => {
    const { t, env, namespace } = newTarget('k-canary');
    const spec: RolloutSpec = {
      strategy: 'canary',
      canary: { stickySessions: false, steps: [{ setWeight: 25 }, { pause: {} }, { setWeight: 50 }, { analysis: { metrics: [metric('ok')] } }, { pause: {} }] },
    };
    expect((await t.apply(app(env, '1.0.0', spec, { replicas: 4 }), ctx('a'))).ok).toBe(true);
    const [stable] = Object.keys(deployments(namespace));
    expect(kubectl('-n', namespace, 'get', 'svc/web', '-o', 'jsonpath={.spec.selector}')).not.toContain('keelson.dev/set');

    const ratios: Record<string, [number, number]>[] = [];
    const off = bus.subscribe((e) => {
      if (e.type !== 'rollout.paused' || e.env !== env) return;
      void waitFor('scaled', () => {
        const d = deployments(namespace);
        return Object.keys(d).length === 2 && Object.values(d).every(([want, ready]) => want === ready) && d;
      }, 20_000).then((d) => {
        ratios.push(d);
        bus.publish({ type: 'rollout.promoteRequested', env, app: 'web', full: false });
      });
    });
    const done = await t.apply(app(env, '2.0.0', spec, { replicas: 4 }), ctx('b'));
    off();
    expect(done).toMatchObject({ ok: true });
    const canary = Object.keys(ratios[0]).find((n) => n !== stable)!;
    // 25 % of 4 → 1 canary beside 3 stable; 50 % → 2 and 2.
    expect(ratios.map((r) => [r[stable][0], r[canary][0]])).toEqual([
      [3, 1],
      [2, 2],
    ]);
    await waitFor('stable deleted', () => Object.keys(deployments(namespace)).join() === canary, 20_000);
    expect(deployments(namespace)[canary]).toEqual([4, 4]);
    expect(events.some((e) => e.type === 'rollout.completed' && e.env === env)).toBe(true);
  });

  it('a sticky canary keeps each client IP on one version (Service sessionAffinity) until the rollout ends', async () => {
    const { t, env, namespace } = newTarget('k-sticky');
    const spec: RolloutSpec = { strategy: 'canary', canary: { stickySessions: true, steps: [{ setWeight: 50 }, { pause: {} }] } };
    const affinity = () => kubectl('-n', namespace, 'get', 'svc/web', '-o', 'jsonpath={.spec.sessionAffinity}');
    expect((await t.apply(app(env, '1.0.0', spec, { replicas: 2 }), ctx('a'))).ok).toBe(true);
    expect(affinity()).toBe('None');
    const during: string[] = [];
    const off = bus.subscribe((e) => {
      if (e.type !== 'rollout.paused' || e.env !== env) return;
      during.push(affinity());
      bus.publish({ type: 'rollout.promoteRequested', env, app: 'web', full: false });
    });
    const done = await t.apply(app(env, '2.0.0', spec, { replicas: 2 }), ctx('b'));
    off();
    expect(done).toMatchObject({ ok: true });
    expect(during).toEqual(['ClientIP']);
    expect(affinity()).toBe('None');
  });

  it('a canary the engine stopping interrupted is resumed at the same step by the next engine', async () => {
    const { t, env, namespace } = newTarget('k-resume');
    const spec: RolloutSpec = { strategy: 'canary', canary: { stickySessions: false, steps: [{ setWeight: 25 }, { pause: {} }, { setWeight: 50 }, { pause: {} }] } };
    expect((await t.apply(app(env, '1.0.0', spec, { replicas: 4 }), ctx('a'))).ok).toBe(true);
    const stopping = new AbortController();
    let pauses = 0;
    const off = bus.subscribe((e) => {
      if (e.type !== 'rollout.paused' || e.env !== env) return;
      if (++pauses === 1) bus.publish({ type: 'rollout.promoteRequested', env, app: 'web', full: false });
      else stopping.abort(); // the engine stops while the canary waits at 50 %
    });
    const interrupted = await t.apply(app(env, '2.0.0', spec, { replicas: 4 }), { ...ctx('b'), interrupt: stopping.signal });
    off();
    expect(interrupted).toMatchObject({ ok: false, interrupted: true, rolledBack: false });
    const atStop = await waitFor('2 + 2 replicas', () => {
      const d = deployments(namespace);
      return Object.values(d).length === 2 && Object.values(d).every(([want, ready]) => want === 2 && ready === 2) && d;
    }, 20_000);
    await t.close();

    // The next engine: same store, same cluster.
    const t2 = new KubernetesTarget({ env, spec: { namespace }, store, bus, log: silentLogger(), requeue: () => undefined });
    targets.push(t2);
    const from = events.length;
    const atResume: Record<string, [number, number]>[] = [];
    const off2 = bus.subscribe((e) => {
      if (e.type !== 'rollout.paused' || e.env !== env) return;
      atResume.push(deployments(namespace));
      bus.publish({ type: 'rollout.promoteRequested', env, app: 'web', full: false });
    });
    const done = await t2.apply(app(env, '2.0.0', spec, { replicas: 4 }), ctx('b'));
    off2();
    expect(done).toMatchObject({ ok: true });
    const mine = events.slice(from).filter((e) => 'env' in e && e.env === env);
    expect(mine.find((e) => e.type === 'rollout.started')).toMatchObject({ resumed: true });
    // It went on from the pause at 50 %: no earlier step ran again, and the split was never reset.
    expect(mine.filter((e) => e.type === 'rollout.step').map((e) => e.type === 'rollout.step' && e.weight)).not.toContain(25);
    expect(atResume[0]).toEqual(atStop);
    await waitFor('canary is the app', () => Object.values(deployments(namespace)).map(String).join() === '4,4', 20_000);
  });

  /** A canary from 1.0.0 to 2.0.0 the engine stopping interrupted at its first pause (25 %), and the next engine. */
  const interruptedCanary = async (prefix: string, spec: RolloutSpec) => {
    const { t, env, namespace } = newTarget(prefix);
    expect((await t.apply(app(env, '1.0.0', spec, { replicas: 4 }), ctx('a'))).ok).toBe(true);
    const stopping = new AbortController();
    const off = bus.subscribe((e) => {
      if (e.type === 'rollout.paused' && e.env === env) stopping.abort();
    });
    const r = await t.apply(app(env, '2.0.0', spec, { replicas: 4 }), { ...ctx('b'), interrupt: stopping.signal });
    off();
    expect(r).toMatchObject({ ok: false, interrupted: true });
    await t.close();
    const next = new KubernetesTarget({ env, spec: { namespace }, store, bus, log: silentLogger(), requeue: () => undefined });
    targets.push(next);
    return { t: next, env, namespace, v2: Object.keys(deployments(namespace)).find((n) => deployments(namespace)[n][0] === 1)! };
  };

  it('a rollout superseded while the engine was stopped is aborted; a revert drops its checkpoint and drift healing resumes', async () => {
    const spec: RolloutSpec = { strategy: 'canary', canary: { stickySessions: false, steps: [{ setWeight: 25 }, { pause: {} }] } };
    const a = await interruptedCanary('k-superseded', spec);
    const from = events.length;
    const off = bus.subscribe((e) => {
      if (e.type === 'rollout.paused' && e.env === a.env) bus.publish({ type: 'rollout.promoteRequested', env: a.env, app: 'web', full: true });
    });
    const done = await a.t.apply(app(a.env, '3.0.0', spec, { replicas: 4 }), ctx('c'));
    off();
    expect(done).toMatchObject({ ok: true });
    const mine = events.slice(from).filter((e) => 'env' in e && e.env === a.env);
    expect(mine.find((e) => e.type === 'rollout.aborted')).toMatchObject({ reason: expect.stringContaining('while the engine was stopped') });
    await waitFor('only 3.0.0 left', () => {
      const d = deployments(a.namespace);
      return !(a.v2 in d) && Object.keys(d).length === 1 && Object.values(d)[0][0] === 4;
    }, 20_000);

    const b = await interruptedCanary('k-reverted', spec);
    expect(await b.t.apply(app(b.env, '1.0.0', spec, { replicas: 4 }), ctx('a'))).toMatchObject({ ok: true });
    expect(store.getKv(`rollout/${b.env}/web`) ?? '').toBe('');
    await waitFor('2.0.0 pruned', () => !(b.v2 in deployments(b.namespace)), 20_000);
    const [stable] = Object.keys(deployments(b.namespace));
    kubectl('-n', b.namespace, 'scale', `deployment/${stable}`, '--replicas=1');
    await waitFor('scale reverted', () => deployments(b.namespace)[stable]?.[0] === 4, 20_000);
  });

  it('a failed canary analysis returns everything to stable and reports Failed; a new commit cancels a waiting canary', async () => {
    const { t, env, namespace } = newTarget('k-abort');
    const failing: RolloutSpec = { strategy: 'canary', canary: { stickySessions: false, steps: [{ setWeight: 50 }, { analysis: { metrics: [metric('errors')] } }] } };
    expect((await t.apply(app(env, '1.0.0', failing, { replicas: 2 }), ctx('a'))).ok).toBe(true);
    const [stable] = Object.keys(deployments(namespace));
    status = 500;
    const failed = await t.apply(app(env, '2.0.0', failing, { replicas: 2 }), ctx('b'));
    status = 200;
    expect(failed).toMatchObject({ ok: false, rolledBack: true });
    expect(failed.ok === false && failed.message).toMatch(/canary step 1 analysis failed/);
    expect(events.some((e) => e.type === 'rollout.aborted' && e.env === env && /answered 500/.test(e.reason))).toBe(true);
    await waitFor('canary deleted', () => Object.keys(deployments(namespace)).join() === stable, 20_000);
    expect(deployments(namespace)[stable]).toEqual([2, 2]);
    const live = await waitFor('healthy on stable', async () => (await t.observe(env)).find((a) => a.health === 'Healthy'), 20_000);
    expect(live).toMatchObject({ version: '1.0.0' });
    expect(live.objects?.map((o) => o.key).sort()).toEqual([`Deployment/${namespace}/${stable}`, `Service/${namespace}/web`]);

    // A rollout waiting for promotion is cancelled by a newer revision (the engine aborts ApplyContext.signal).
    const waiting: RolloutSpec = { strategy: 'canary', canary: { stickySessions: false, steps: [{ setWeight: 50 }, { pause: {} }] } };
    const newer = new AbortController();
    const off = bus.subscribe((e) => {
      if (e.type === 'rollout.paused' && e.env === env) newer.abort(new Error('superseded by revision ddddddd'));
    });
    const cancelled = await t.apply(app(env, '3.0.0', waiting, { replicas: 2 }), ctx('d', newer.signal));
    off();
    expect(cancelled).toMatchObject({ ok: false, rolledBack: true });
    expect(cancelled.ok === false && cancelled.message).toMatch(/cancelled: superseded by revision ddddddd/);
    await waitFor('back on stable', () => Object.keys(deployments(namespace)).join() === stable, 20_000);
  });

  it('a canary abort whose scale-back of the stable set is refused keeps the canary serving, says why, and finishes on the retry', async () => {
    const { t, env, namespace } = newTarget('k-abort-cap');
    const spec: RolloutSpec = { strategy: 'canary', canary: { stickySessions: false, steps: [{ setWeight: 50 }, { pause: {} }, { analysis: { metrics: [metric('errors')] } }] } };
    expect((await t.apply(app(env, '1.0.0', spec, { replicas: 2 }), ctx('a'))).ok).toBe(true);
    const [stable] = Object.keys(deployments(namespace));
    // A real refusal by the API server: a ValidatingAdmissionPolicy that denies scale-ups in this namespace.
    const policy = `${namespace}-no-scale-up`;
    const freeze = `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: { name: ${policy} }
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules: [{ apiGroups: [apps], apiVersions: [v1], operations: [UPDATE], resources: [deployments] }]
  validations: [{ expression: "object.spec.replicas <= oldObject.spec.replicas", message: "scale-ups are frozen in this namespace" }]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: { name: ${policy} }
spec:
  policyName: ${policy}
  validationActions: [Deny]
  matchResources: { namespaceSelector: { matchLabels: { kubernetes.io/metadata.name: ${namespace} } } }
`;
    const refused = () => {
      try {
        kubectl('-n', namespace, 'patch', `deployment/${stable}`, '--dry-run=server', '--type=merge', '-p', '{"spec":{"replicas":9}}');
        return false;
      } catch {
        return true;
      }
    };
    try {
      // At the pause (1 stable + 1 canary ready): scale-ups are frozen, then the analysis fails and the canary aborts.
      const off = bus.subscribe((e) => {
        if (e.type !== 'rollout.paused' || e.env !== env) return;
        void (async () => {
          kubectlWithInput(freeze, 'apply', '-f', '-');
          await waitFor('policy in force', refused, 20_000);
          status = 500;
          bus.publish({ type: 'rollout.promoteRequested', env, app: 'web', full: false });
        })();
      });
      const first = await t.apply(app(env, '2.0.0', spec, { replicas: 2 }), ctx('b'));
      off();
      status = 200;
      expect(first).toMatchObject({ ok: false, rolledBack: false, transient: true });
      expect(first.ok === false && first.message).toMatch(new RegExp(`the stable set ${stable} could not be brought back to 2 ready replicas, so web-[0-9a-f]{10} is kept \\(serving\\) until it is; retrying.*scale-ups are frozen`));
      // Capacity kept: the canary set still runs beside the stable one, 2 ready replicas in all.
      const during = deployments(namespace);
      expect(Object.keys(during)).toHaveLength(2);
      expect(Object.values(during).reduce((n, [, ready]) => n + ready, 0)).toBe(2);
      expect(during[stable]).toEqual([1, 1]);
      const canary = Object.keys(during).find((n) => n !== stable)!;
      // Drift healing stays off while the abort is pending (the checkpoint says "aborting").
      expect(JSON.parse(store.getKv(`rollout/${env}/web`) ?? '{}').checkpoint?.aborting).toMatch(/analysis failed: metric "errors" failed/);

      // The retry (the next reconcile) with the policy still in force changes nothing.
      const again = await t.apply(app(env, '2.0.0', spec, { replicas: 2 }), ctx('b'));
      expect(again).toMatchObject({ ok: false, transient: true });
      expect(deployments(namespace)[canary]).toEqual([1, 1]);

      // Scale-ups allowed again: the retry finishes the abort, stable back to 2 ready before the canary goes.
      kubectl('delete', 'validatingadmissionpolicybinding', policy, '--ignore-not-found');
      kubectl('delete', 'validatingadmissionpolicy', policy, '--ignore-not-found');
      await waitFor('policy gone', () => !refused(), 20_000);
      const finished = await t.apply(app(env, '2.0.0', spec, { replicas: 2 }), ctx('b'));
      expect(finished).toMatchObject({ ok: false, rolledBack: true });
      expect(finished.ok === false && finished.message).toMatch(/analysis failed: metric "errors" failed/);
      await waitFor('canary deleted', () => Object.keys(deployments(namespace)).join() === stable, 20_000);
      expect(deployments(namespace)[stable]).toEqual([2, 2]);
      expect(store.getKv(`rollout/${env}/web`) ?? '').toBe('');
    } finally {
      kubectl('delete', 'validatingadmissionpolicybinding', policy, '--ignore-not-found');
      kubectl('delete', 'validatingadmissionpolicy', policy, '--ignore-not-found');
    }
  });

  it('rejects request metrics on Kubernetes before anything changes', async () => {
    const { t, env } = newTarget('k-req');
    const spec: RolloutSpec = {
      strategy: 'canary',
      canary: { stickySessions: true, steps: [{ setWeight: 10 }, { analysis: { metrics: [metric('errors', { http: undefined, requests: { maxErrorRate: 0.01, minRequests: 1 } })] } }] },
    };
    const r = await t.apply(app(env, '1.0.0', spec), ctx('a'));
    expect(r.ok === false && r.message).toMatch(/analysis metric "errors" uses "requests".*Kubernetes target does not have; use an "http" or "exec" check/);
  });

  it("an app of plain manifests rolls blue/green too; Argo CD hooks keep their meaning: PostSync after the switch, a failing one switches back and runs SyncFail", async () => {
    const { t, env, namespace } = newTarget('k-bghooks');
    const dir = join(tmp.dir, 'bg-hooks');
    const job = (name: string, hook: string, fail: boolean) => `apiVersion: batch/v1
kind: Job
metadata:
  name: ${name}
  annotations: { argocd.argoproj.io/hook: ${hook}, argocd.argoproj.io/hook-delete-policy: BeforeHookCreation }
spec:
  backoffLimit: 0
${fail ? '  activeDeadlineSeconds: 2\n' : ''}  template:
    spec:
      restartPolicy: Never
${fail ? '      nodeSelector: { keelson.dev/no-such-node: "true" }\n' : ''}      containers: [{ name: c, image: registry.example/check:1 }]
`;
    const write = (version: string, postSyncFails: boolean) =>
      writeTree(dir, {
        'app.yaml': `${deploymentYaml('api', { image: `registry.example/api:${version}`, replicas: 2 })}---
apiVersion: v1
kind: Service
metadata: { name: api-public }
spec: { selector: { app: api }, ports: [{ port: 80 }] }
`,
        'smoke.yaml': job('smoke', 'PostSync', postSyncFails),
        'page.yaml': job('page', 'SyncFail', false),
      });
    const spec: RolloutSpec = { strategy: 'blueGreen', blueGreen: { autoPromotionEnabled: true, scaleDownDelaySeconds: 1 } };
    const manifestsApp = (version: string) => app(env, version, spec, { image: undefined, port: undefined, manifests: { dir: 'bg-hooks', replicas: false }, artifact: { path: 'bg-hooks' } });
    const selected = () => kubectl('-n', namespace, 'get', 'svc/api-public', '-o', 'jsonpath={.spec.selector.keelson\\.dev/set}');
    const images = () => kubectl('-n', namespace, 'get', 'deploy', '-o', 'jsonpath={.items[*].spec.template.spec.containers[0].image}');
    write('1', false);
    const first = await t.apply(manifestsApp('1'), ctx('a'));
    expect(first.ok, first.ok ? '' : first.message).toBe(true);
    const v1 = selected();
    expect(v1).not.toBe('');

    write('2', false);
    const second = await t.apply(manifestsApp('2'), ctx('b'));
    expect(second.ok, second.ok ? '' : second.message).toBe(true);
    const v2 = selected();
    expect(v2).not.toBe(v1);
    expect(Object.keys(deployments(namespace))).toEqual([`api-${v2}`]); // named after the manifest's Deployment
    const keys = second.objects!.map((o) => o.key);
    expect(keys.at(-1)).toBe(`Job/${namespace}/smoke`); // PostSync ran after the switch
    expect(keys).not.toContain(`Job/${namespace}/page`);

    write('3', true);
    const third = await t.apply(manifestsApp('3'), ctx('c'));
    expect(third).toMatchObject({ ok: false, rolledBack: true });
    expect(third.ok === false && third.message).toMatch(new RegExp(`PostSync hook Job/${namespace}/smoke .*rolled back to 2`));
    expect(third.objects!.map((o) => o.key)).toContain(`Job/${namespace}/page`);
    await waitFor('only 2 left', () => images() === 'registry.example/api:2', 30_000);
    expect(selected()).toBe(v2);
  });

  it('runs hook exec steps as Jobs from the pod template; a failed preSync Job stops the sync', async () => {
    const deps = (t: KubernetesTarget) => ({ stateDir: tmp.dir, bus, log: silentLogger(), target: t, store, checkout: async () => tmp.dir });
    const hooks = (timeoutSeconds: number): HookSet => ({ preSync: [{ name: 'migrate', exec: { command: ['sh', '-c', 'echo migrating'] }, timeoutSeconds, retries: 1, retryDelaySeconds: 0 }] });
    const rolling: RolloutSpec = { strategy: 'rolling' };

    const ok = newTarget('k-hook');
    const desired = app(ok.env, '1.0.0', rolling);
    const from = events.length;
    const r = await applyWithHooks(deps(ok.t), { app: desired, hooks: hooks(60), revision: 'a'.repeat(40), checkoutDir: tmp.dir, apply: () => ok.t.apply(desired, ctx('a')) });
    expect(r).toMatchObject({ ok: true });
    const done = events.slice(from).find((e) => e.type === 'hook.completed' && e.env === ok.env);
    expect(done).toMatchObject({ phase: 'preSync', step: 'migrate', ok: true, attempt: 1 });
    expect(done?.type === 'hook.completed' && done.message).toMatch(/^Job web-run-[0-9a-f]{6} succeeded/);
    await waitFor('hook Job deleted', () => kubectl('-n', ok.namespace, 'get', 'jobs', '-o', 'name') === '', 30_000);

    // A namespace whose quota admits no pod: the Job's pod is never created, its deadline ends it, the sync stops.
    const bad = newTarget('k-hookfail');
    kubectl('create', 'namespace', bad.namespace);
    kubectlWithInput(`apiVersion: v1\nkind: ResourceQuota\nmetadata: { name: no-pods }\nspec: { hard: { pods: "0" } }\n`, '-n', bad.namespace, 'apply', '-f', '-');
    // Admission enforces a quota once the quota controller has computed its status.
    await waitFor('quota in force', () => kubectl('-n', bad.namespace, 'get', 'resourcequota/no-pods', '-o', 'jsonpath={.status.hard.pods}') === '0', 20_000);
    const desired2 = app(bad.env, '1.0.0', rolling);
    const from2 = events.length;
    const r2 = await applyWithHooks(deps(bad.t), { app: desired2, hooks: hooks(2), revision: 'a'.repeat(40), checkoutDir: tmp.dir, apply: () => bad.t.apply(desired2, ctx('a')) });
    expect(r2).toMatchObject({ ok: false });
    expect(r2.ok === false && r2.message).toMatch(/preSync hook "migrate" failed after 2 attempts: Job web-run-[0-9a-f]{6} timed out after 2s.*nothing was changed/);
    const attempts = events.slice(from2).filter((e) => e.type === 'hook.completed' && e.env === bad.env);
    expect(attempts.map((e) => e.type === 'hook.completed' && e.ok)).toEqual([false, false]);
    expect(kubectl('-n', bad.namespace, 'get', 'deploy', '-o', 'name')).toBe('');
  });
});
