import { type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { commitAll, freePort, gitInit, startKeelson, stopProcess, tempDir, waitFor, writeTree } from '../helpers.js';
import { deploymentYaml, kubectl, kubernetesSuite, uniqueNamespace } from '../k8s.js';

/**
 * The API on every engine, on the test control plane (README: "The API on every engine"): two engines sharded by
 * member Leases, listening on 0.0.0.0 as in a pod with POD_IP set (the chart's downward API), run one Kubernetes
 * environment each. The holder's address is on its Lease; asked about the other's environment, an engine answers what
 * that engine answers; kill -9 that engine and the answer is a 502 naming it, until the Lease has changed hands.
 */
kubernetesSuite('the API on every engine (Kubernetes environments, member Leases)', () => {
  const tmp = tempDir('keelson-peers-k8s-');
  const ops = join(tmp.dir, 'ops');
  const members = uniqueNamespace('peers-members');
  const envs = { dev: uniqueNamespace('peers-dev'), prod: uniqueNamespace('peers-prod') };
  const viewer = `kls_${'w'.repeat(40)}`;
  const tokensFile = join(tmp.dir, 'tokens.yaml');
  const engines: { child: ChildProcess; api: string }[] = [];

  const start = async (name: string) => {
    const port = await freePort();
    const state = join(tmp.dir, `state-${name}`);
    const was = process.env.POD_IP;
    process.env.POD_IP = '127.0.0.1'; // as the downward API sets it in a pod; the engine advertises http://$POD_IP:port
    try {
      const child = startKeelson(['--repo', ops, '--state-dir', state, '--listen', `0.0.0.0:${port}`, '--poll', '1s', '--membership-namespace', members, '--tokens-file', tokensFile], join(tmp.dir, `${name}.log`));
      const e = { child, api: `http://127.0.0.1:${port}` };
      engines.push(e);
      return e;
    } finally {
      if (was === undefined) delete process.env.POD_IP;
      else process.env.POD_IP = was;
    }
  };
  const call = async (url: string, own = false) => {
    const res = await fetch(url, { headers: { authorization: `Bearer ${viewer}`, ...(own ? { 'x-keelson-forwarded-by': 'test' } : {}) } });
    return { status: res.status, servedBy: res.headers.get('x-keelson-served-by'), json: (await res.json().catch(() => undefined)) as any };
  };
  const runs = async (api: string) => {
    const s = (await call(`${api}/api/v1/status`, true).catch(() => undefined))?.json;
    return (s?.environments ?? []).filter((e: any) => e.claim?.state === 'Active' && e.apps[0]?.sync === 'Synced').map((e: any) => e.name);
  };

  beforeAll(() => {
    const files: Record<string, string> = {
      'apps/web.yaml': 'apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata: { name: web }\nspec:\n  version: "1"\n  manifests: ../manifests/web\n',
      'manifests/web/deployment.yaml': deploymentYaml('web', { image: 'registry.example/web:1', replicas: 1 }),
    };
    for (const [env, ns] of Object.entries(envs)) {
      files[`envs/${env}.yaml`] = `apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: ${env} }\nspec:\n  target: { kubernetes: { namespace: ${ns} } }\n  apps: { web: {} }\n`;
    }
    writeTree(ops, files);
    gitInit(ops);
    commitAll(ops, 'web in dev and prod');
    writeFileSync(tokensFile, `tokens:\n  - { name: victor, role: viewer, sha256: ${createHash('sha256').update(viewer).digest('hex')} }\n`);
    kubectl('create', 'namespace', members);
  });

  afterAll(async () => {
    for (const e of engines) await stopProcess(e.child);
    kubectl('delete', 'namespace', members, ...Object.values(envs), '--wait=false', '--ignore-not-found');
    tmp.cleanup();
  });

  it('each engine answers for the other’s environment, with the holder’s address from its Lease; 502 naming it once it died', async () => {
    const a = await start('a');
    const b = await start('b');
    const [, ofB] = await waitFor('one environment each, synced', async () => {
      const [ra, rb] = [await runs(a.api), await runs(b.api)];
      return ra.length === 1 && rb.length === 1 && ra[0] !== rb[0] && [ra[0], rb[0]];
    }, 120_000);
    const idOfB = (await call(`${b.api}/api/v1/status`, true)).json.engine.id;
    const ns = envs[ofB as keyof typeof envs];
    // The holder's address is on its claim.
    expect(kubectl('-n', ns, 'get', 'lease', `keelson-env-${ofB}`, '-o', 'jsonpath={.spec.holderIdentity} {.metadata.annotations.keelson\\.dev/claim-url}')).toBe(`${idOfB} ${b.api}`);

    const shown = await waitFor('a shows b’s environment as b runs it', async () => {
      const e = (await call(`${a.api}/api/v1/status?env=${ofB}`)).json?.environments?.[0];
      return e?.peer?.error === null && e;
    }, 30_000);
    expect(shown.peer).toEqual({ engine: idOfB, url: b.api, error: null });
    expect(shown.claim).toMatchObject({ state: 'Standby', holder: idOfB, where: `Lease ${ns}/keelson-env-${ofB}` });
    expect(shown.apps[0]).toMatchObject({ name: 'web', sync: 'Synced' });
    for (const path of [`/api/v1/history?env=${ofB}`, `/api/v1/environments/${ofB}/apps/web`, `/api/v1/environments/${ofB}/apps/web/events`]) {
      const [fromA, fromB] = [await call(`${a.api}${path}`), await call(`${b.api}${path}`)];
      expect(fromA.status, path).toBe(200);
      expect(fromA.servedBy, path).toBe(idOfB);
      expect(fromA.json, path).toEqual(fromB.json);
    }

    b.child.kill('SIGKILL');
    const refused = await call(`${a.api}/api/v1/environments/${ofB}/apps/web`);
    expect(refused.status).toBe(502);
    expect(refused.json.message).toContain(`is run by engine ${idOfB} (${b.api}), which did not answer`);
    await waitFor('a runs both environments', async () => (await runs(a.api)).length === 2, 90_000);
    const after = await call(`${a.api}/api/v1/environments/${ofB}/apps/web`);
    expect(after.status).toBe(200);
    expect(after.servedBy).toBeNull();
  }, 300_000);
});
