import { type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from '../browser.js';
import { commitAll, freePort, gitInit, runCli, startKeelson, stopProcess, tempDir, waitFor, writeTree } from '../helpers.js';

/**
 * The API on every engine (README: "The API on every engine"): two `keelson up --shard` engines on one ops repository
 * run one environment each; asked about the other's environment, an engine answers what that engine answers (status,
 * history, app detail, events, log tail), a sync through it runs there, with the caller's token checked on both; kill
 * -9 the other engine and the answer is a 502 naming it, until this engine has taken the environment over.
 */
describe('the API on every engine (keelson up --shard)', () => {
  const tmp = tempDir('keelson-peers-e2e-');
  const ops = join(tmp.dir, 'ops');
  const claimsDir = join(tmp.dir, 'claims');
  const envs = ['dev', 'prod'];
  const admin = `kls_${'a'.repeat(40)}`;
  const viewer = `kls_${'v'.repeat(40)}`;
  const tokensFile = join(tmp.dir, 'tokens.yaml');
  const engines: { name: string; child: ChildProcess; api: string; state: string; log: string }[] = [];

  const start = async (name: string) => {
    const port = await freePort();
    const state = join(tmp.dir, `state-${name}`);
    const log = join(tmp.dir, `${name}.log`);
    const child = startKeelson(['--repo', ops, '--state-dir', state, '--listen', `127.0.0.1:${port}`, '--poll', '1h', '--claims-dir', claimsDir, '--shard', '--tokens-file', tokensFile], log);
    const e = { name, child, api: `http://127.0.0.1:${port}`, state, log };
    engines.push(e);
    return e;
  };
  const call = async (url: string, o: { token?: string; method?: string; body?: unknown; own?: boolean } = {}) => {
    const headers: Record<string, string> = {};
    if (o.token !== undefined) headers.authorization = `Bearer ${o.token}`;
    if (o.own) headers['x-keelson-forwarded-by'] = 'test'; // the engine's own answer, as to a forwarded request
    if (o.body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(url, { method: o.method ?? 'GET', headers, body: o.body === undefined ? undefined : JSON.stringify(o.body) });
    const text = await res.text();
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, servedBy: res.headers.get('x-keelson-served-by'), text, json };
  };
  const get = async (url: string, o: { own?: boolean } = {}) => {
    const r = await call(url, { token: viewer, ...o });
    if (r.status !== 200) throw new Error(`${url}: ${r.status} ${r.text}`);
    return r.json;
  };
  /** The environments this engine runs itself, healthy. */
  const runs = async (api: string) => {
    const s = await get(`${api}/api/v1/status`, { own: true }).catch(() => undefined);
    return (s?.environments ?? []).filter((e: any) => e.claim?.state === 'Active' && e.apps[0]?.health === 'Healthy').map((e: any) => e.name);
  };

  beforeAll(() => {
    const files: Record<string, string> = { 'bin/README': 'inline app\n' };
    files['apps/hello.yaml'] =
      'apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata: { name: hello }\nspec:\n  version: "1"\n  artifact: { path: ../bin }\n' +
      '  run: { command: ["node", "-e", "console.log(\'hello from \' + process.pid); setInterval(() => {}, 1000)"] }\n';
    for (const env of envs) files[`envs/${env}.yaml`] = `apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: ${env} }\nspec:\n  apps: { hello: {} }\n`;
    writeTree(ops, files);
    gitInit(ops);
    commitAll(ops, 'two environments');
    const sha = (t: string) => createHash('sha256').update(t).digest('hex');
    writeFileSync(tokensFile, `tokens:\n  - { name: alice, role: admin, sha256: ${sha(admin)} }\n  - { name: victor, role: viewer, sha256: ${sha(viewer)} }\n`);
  });

  afterAll(async () => {
    for (const e of engines) {
      if (e.child.exitCode === null && e.child.signalCode === null) await stopProcess(e.child);
      runCli(['down', '--state-dir', e.state]);
    }
    tmp.cleanup();
  });

  it('asked about the other engine’s environment, an engine answers what that engine answers; 502 naming it once it died', async () => {
    const a = await start('a');
    const b = await start('b');
    const [ofA, ofB] = await waitFor('one environment each, healthy', async () => {
      const [ra, rb] = [await runs(a.api), await runs(b.api)];
      return ra.length === 1 && rb.length === 1 && ra[0] !== rb[0] && [ra[0], rb[0]];
    }, 90_000);
    const idOfB = (await get(`${b.api}/api/v1/status`, { own: true })).engine.id;
    const envB = `${b.api}/api/v1/environments/${ofB}/apps/hello`;
    const viaA = `${a.api}/api/v1/environments/${ofB}/apps/hello`;

    // Status: a shows b's environment with b's apps (the replica b runs), its own view of the claim, and whose it is.
    const theirs = (await get(`${b.api}/api/v1/status?env=${ofB}`)).environments[0];
    const shown = await waitFor('a shows b’s environment as b runs it', async () => {
      const e = (await get(`${a.api}/api/v1/status?env=${ofB}`)).environments[0];
      return e.peer?.error === null && e;
    }, 30_000);
    expect(shown.peer).toEqual({ engine: idOfB, url: b.api, error: null });
    expect(shown.claim).toMatchObject({ state: 'Standby', holder: idOfB, url: b.api });
    expect(shown.apps[0].instances.map((i: any) => i.pid)).toEqual(theirs.apps[0].instances.map((i: any) => i.pid));
    expect(shown.apps[0].instances.length).toBe(1);
    // Every environment in one answer, each from the engine that runs it.
    const all = await get(`${a.api}/api/v1/status`);
    expect(all.environments.map((e: any) => [e.name, e.apps[0].health, e.apps[0].instances.length]).sort()).toEqual(envs.map((e) => [e, 'Healthy', 1]));
    expect(all.environments.find((e: any) => e.name === ofA).peer).toBeUndefined();
    // `keelson status` against a says whose it is.
    const text = runCli(['status', '--server', a.api, '--token', viewer]);
    expect(text.stdout).toContain(`ENVIRONMENT ${ofB} (local)\n  Standby: claimed by ${idOfB}`);
    expect(text.stdout).toContain(`\n  run by engine ${idOfB} (${b.api})\n`);
    const matrix = await get(`${a.api}/api/v1/matrix`);
    expect(Object.values(matrix.rows[0].cells).map((c: any) => c.health)).toEqual(['Healthy', 'Healthy']);

    // History, app detail, events and log tail: b's answer, served by b.
    for (const path of [`/api/v1/history?env=${ofB}`, `/api/v1/environments/${ofB}/apps/hello`, `/api/v1/environments/${ofB}/apps/hello/events`]) {
      const fromA = await call(`${a.api}${path}`, { token: viewer });
      const fromB = await call(`${b.api}${path}`, { token: viewer });
      expect(fromA.status, path).toBe(200);
      expect(fromA.servedBy, path).toBe(idOfB);
      expect(fromA.json, path).toEqual(fromB.json);
    }
    expect((await get(`${a.api}/api/v1/history?env=${ofB}`)).syncs.length).toBeGreaterThan(0);
    const logs = await call(`${viaA}/logs?tail=10`, { token: viewer });
    expect(logs.status).toBe(200);
    expect(logs.text).toMatch(/^hello from \d+$/m);
    expect(logs.text).toBe((await call(`${envB}/logs?tail=10`, { token: viewer })).text);
    // A log follow streams through a: the first chunk arrives, and the client going away ends it.
    const ac = new AbortController();
    const follow = await fetch(`${viaA}/logs?tail=10&follow=1`, { headers: { authorization: `Bearer ${viewer}` }, signal: ac.signal });
    expect(follow.headers.get('x-keelson-served-by')).toBe(idOfB);
    const first = await follow.body!.getReader().read();
    expect(new TextDecoder().decode(first.value)).toMatch(/^hello from \d+$/m);
    ac.abort();
    // Merged history: the syncs of both environments.
    const history = await get(`${a.api}/api/v1/history`);
    expect([...new Set(history.syncs.map((s: any) => s.env))].sort()).toEqual(envs);

    // The dashboard on a: both environments in the matrix, and the app page of b's environment with b's replica and logs.
    const browser = await launchChromium();
    try {
      const page = await browser.context.newPage();
      await page.goto(`${a.api}/`);
      await page.getByLabel('API token').fill(viewer);
      await page.getByRole('button', { name: 'Sign in' }).click();
      for (const env of envs) await expect.poll(() => page.locator(`td[data-env="${env}"][data-app="hello"]`).innerText(), { timeout: 30_000 }).toMatch(/Synced[\s\S]*Healthy/);
      expect(await page.locator('.notice').count()).toBe(0);
      await page.locator(`td[data-env="${ofB}"][data-app="hello"] a`).click();
      await expect.poll(() => page.locator('#replicas tbody').innerText(), { timeout: 30_000 }).toMatch(/running\s+ready/);
      await expect.poll(() => page.locator('#logs').innerText(), { timeout: 30_000 }).toMatch(/hello from \d+/);
    } finally {
      await browser.close();
    }

    // A git webhook to a is passed on to b (no poll for an hour here): both fetch the new commit at once.
    writeFileSync(join(ops, 'NOTES'), 'a new commit\n');
    const head = commitAll(ops, 'notes');
    const hook = await fetch(`${a.api}/api/v1/webhooks/git`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-github-event': 'push' }, body: '{}' });
    expect(hook.status).toBe(202);
    await waitFor('both engines fetched the new commit', async () => {
      const [sa, sb] = [await get(`${a.api}/api/v1/status`, { own: true }), await get(`${b.api}/api/v1/status`, { own: true })];
      return sa.revision === head && sb.revision === head;
    }, 30_000);

    // The caller's token counts on both engines: none → 401, a viewer may not sync (403), an admin's sync runs on b.
    expect((await call(`${a.api}/api/v1/environments/${ofB}/sync`, { method: 'POST', body: {} })).status).toBe(401);
    expect((await call(`${a.api}/api/v1/environments/${ofB}/sync`, { token: viewer, method: 'POST', body: {} })).status).toBe(403);
    const synced = await call(`${a.api}/api/v1/environments/${ofB}/sync`, { token: admin, method: 'POST', body: {} });
    expect(synced.status).toBe(200);
    expect(synced.servedBy).toBe(idOfB);
    expect(synced.json.result).toBe('Unchanged'); // b's answer: it runs it (a standby's would say why it does not)
    // b ran it for alice: its audit log says so (a's too, as every engine records the actions it is asked).
    const audit = (await call(`${b.api}/api/v1/audit?limit=10`, { token: admin, own: true })).json.entries;
    expect(audit).toContainEqual(expect.objectContaining({ actor: 'alice', action: 'sync', target: `/api/v1/environments/${ofB}/sync`, result: 'succeeded' }));

    // b dies: a answers 502 naming b and saying what to do, until it has taken b's environment over.
    b.child.kill('SIGKILL');
    const refused = await call(`${viaA}/logs?tail=10`, { token: viewer });
    expect(refused.status).toBe(502);
    expect(refused.json).toMatchObject({ error: 'BadGateway', engine: idOfB, url: b.api });
    expect(refused.json.message).toContain(`is run by engine ${idOfB} (${b.api}), which did not answer`);
    expect(refused.json.message).toContain('takes the environment over once its claim expires');
    const degraded = (await get(`${a.api}/api/v1/status?env=${ofB}`)).environments[0];
    expect(degraded.peer).toMatchObject({ engine: idOfB, error: expect.stringContaining('did not answer') });
    await waitFor('a runs both environments', async () => (await runs(a.api)).length === 2, 60_000);
    const after = await call(`${viaA}/logs?tail=10`, { token: viewer });
    expect(after.status).toBe(200);
    expect(after.servedBy).toBeNull();

    // The caller's token never reaches a log line.
    await stopProcess(a.child);
    expect(readFileSync(a.log, 'utf8')).not.toContain(admin);
    expect(readFileSync(a.log, 'utf8')).not.toContain(viewer);
  }, 240_000);
});
