import { expect, it } from 'vitest';
import type { DesiredApp } from '../../core/model.js';
import { waitFor, writeTree } from '../../../test/helpers.js';
import { kubectl, kubernetesSuite, manifestsAppOf, suiteTargets } from '../../../test/k8s.js';

/**
 * A Secret written with `stringData` in plain manifests (found by the crash driver's Kubernetes mode): the API server
 * keeps only `data`, so the applied object must be compared as `data`, or the app is never in sync and every
 * reconcile applies it again (and runs its PostSync hooks again), forever.
 */
kubernetesSuite('kubernetes target: Secrets written with stringData', () => {
  const s = suiteTargets('k-strdata');
  const app = (env: string, dir: string): DesiredApp => manifestsAppOf('cfg', env, dir);

  it('is in sync once applied; a re-apply writes nothing; a changed or removed key is applied', async () => {
    const { t, env, namespace } = s.newTarget('k-strdata');
    const secret = (data: Record<string, string>) =>
      `apiVersion: v1\nkind: Secret\nmetadata: { name: cfg-secret }\nstringData:\n${Object.entries(data).map(([k, v]) => `  ${k}: "${v}"\n`).join('')}`;
    writeTree(s.tmp.dir, { 'cfg/secret.yaml': secret({ token: 't-1', extra: 'x' }) });
    const ctx = { revision: 'a'.repeat(40), checkoutDir: s.tmp.dir };
    expect(await t.apply(app(env, 'cfg'), ctx)).toMatchObject({ ok: true, action: 'created' });
    const [live] = await t.observe(env);
    expect(live).toMatchObject({ name: 'cfg', health: 'Healthy' });
    await waitFor('the Secret in sync', async () => (await t.observe(env))[0].intact, 10_000);

    const rv = kubectl('-n', namespace, 'get', 'secret/cfg-secret', '-o', 'jsonpath={.metadata.resourceVersion}');
    const again = await t.apply(app(env, 'cfg'), ctx);
    expect(again.objects?.map((o) => o.action)).toEqual(['unchanged']);
    expect(kubectl('-n', namespace, 'get', 'secret/cfg-secret', '-o', 'jsonpath={.metadata.resourceVersion}')).toBe(rv);

    writeTree(s.tmp.dir, { 'cfg/secret.yaml': secret({ token: 't-2' }) });
    expect(await t.apply(app(env, 'cfg'), { ...ctx, revision: 'b'.repeat(40) })).toMatchObject({ ok: true });
    const data = JSON.parse(kubectl('-n', namespace, 'get', 'secret/cfg-secret', '-o', 'jsonpath={.data}'));
    expect(Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(String(v), 'base64').toString()]))).toEqual({ token: 't-2' });
    await waitFor('the changed Secret in sync', async () => (await t.observe(env))[0].intact, 10_000);
  });
});
