import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from '../browser.js';
import { appServer, commitAll, freePort, gitInit, root, runCli, startKeelson, stopProcess, tempDir, waitFor, writeTree } from '../helpers.js';

/**
 * The dashboard in real Chromium against a real `keelson up`: sign in, the matrix, a commit appearing without a
 * reload, the app page with its replicas, diff and live logs, pause/resume, the audit log.
 */
function runCliAsync(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [join(root, 'bin', 'keelson'), ...args], { encoding: 'utf8' }, (err, stdout, stderr) => res({ code: err ? ((err as any).code ?? 1) : 0, stdout, stderr }));
  });
}

describe('dashboard in Chromium', () => {
  const tmp = tempDir('keelson-ui-');
  const ops = join(tmp.dir, 'ops');
  const state = join(tmp.dir, 'state');
  const shots = join(root, 'test-output', 'dashboard');
  const adminToken = 'kls_admin_token_for_tests_0123456789';
  const viewerToken = 'kls_viewer_token_for_tests_0123456789';
  let api: string;
  let appPort: number;
  let keelson: ChildProcess;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  let page: Page;

  const envYaml = (name: string, version: string) => `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata: { name: ${name} }
spec:
  apps:
    web: { version: "${version}" }
`;
  const auth = (t: string) => ({ authorization: `Bearer ${t}` });

  beforeAll(async () => {
    mkdirSync(shots, { recursive: true });
    const apiPort = await freePort();
    appPort = await freePort();
    api = `http://127.0.0.1:${apiPort}`;
    writeTree(ops, {
      'apps/web.yaml': `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: web }
spec:
  version: "1.0.0"
  artifact:
    path: ../releases/web-{version}
  run: { command: ["node", "server.js"] }
  replicas: 2
  port: ${appPort}
  readiness: { http: { path: /healthz }, periodSeconds: 1 }
`,
      'environments/dev.yaml': envYaml('dev', '1.0.0'),
      'releases/web-1.0.0/server.js': appServer('1.0.0'),
      'releases/web-1.1.0/server.js': appServer('1.1.0'),
    });
    gitInit(ops);
    commitAll(ops, 'web 1.0.0');
    const sha = (t: string) => createHash('sha256').update(t).digest('hex');
    const tokensFile = join(tmp.dir, 'tokens.yaml');
    writeFileSync(tokensFile, `tokens:\n  - { name: alice, role: admin, sha256: ${sha(adminToken)} }\n  - { name: victor, role: viewer, sha256: ${sha(viewerToken)} }\n`);
    keelson = startKeelson(['--repo', ops, '--state-dir', state, '--listen', `127.0.0.1:${apiPort}`, '--poll', '1s', '--tokens-file', tokensFile], join(tmp.dir, 'keelson.log'));
    await waitFor('web healthy', async () => {
      const s = await (await fetch(`${api}/api/v1/status`, { headers: auth(adminToken) })).json();
      return s.environments?.[0]?.apps?.[0]?.health === 'Healthy';
    });
    browser = await launchChromium();
    page = await browser.context.newPage();
  });

  afterAll(async () => {
    await browser?.close();
    if (keelson) await stopProcess(keelson);
    runCli(['down', '--state-dir', state]);
    tmp.cleanup();
  });

  it('asks for a token, then shows the matrix with text statuses', async () => {
    await page.goto(api + '/');
    await page.getByLabel('API token').fill('wrong');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'unknown or revoked token' }).waitFor();
    await page.getByLabel('API token').fill(adminToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
    const cell = page.locator('td[data-env="dev"][data-app="web"]');
    await cell.waitFor();
    await expect.poll(() => cell.innerText()).toMatch(/1\.0\.0[\s\S]*Synced[\s\S]*Healthy[\s\S]*web 1\.0\.0/);
    await expect.poll(() => page.locator('#live').innerText()).toBe('live');
    expect(await page.locator('#who').innerText()).toContain('alice · admin');
    await page.screenshot({ path: join(shots, '1-matrix.png'), fullPage: true });
  });

  it('shows a new commit without a reload', async () => {
    await page.evaluate(() => ((window as any).__sameDocument = true));
    writeTree(ops, { 'environments/dev.yaml': envYaml('dev', '1.1.0') });
    commitAll(ops, 'web 1.1.0');
    await fetch(`${api}/api/v1/webhooks/git`, { method: 'POST', body: '{}' });
    const cell = page.locator('td[data-env="dev"][data-app="web"]');
    await expect.poll(() => cell.innerText(), { timeout: 60_000 }).toMatch(/^1\.1\.0[\s\S]*Synced[\s\S]*Healthy[\s\S]*web 1\.1\.0/);
    expect(await page.evaluate(() => (window as any).__sameDocument)).toBe(true);
    await page.screenshot({ path: join(shots, '2-matrix-after-commit.png'), fullPage: true });
  });

  it('filters the matrix on the server', async () => {
    await page.getByLabel('Filter apps').fill('nomatch');
    await expect.poll(() => page.locator('.pager span').innerText()).toBe('apps 0–0 of 0');
    await page.getByLabel('Filter apps').fill('we');
    await expect.poll(() => page.locator('.pager span').innerText()).toBe('apps 1–1 of 1');
  });

  it('opens the app page by keyboard: replicas, diff, history, events and live logs', async () => {
    const link = page.locator('td[data-env="dev"][data-app="web"] a');
    await link.focus();
    await page.keyboard.press('Enter');
    await page.locator('#replicas tbody tr').nth(1).waitFor();
    expect(await page.locator('#replicas tbody tr').count()).toBe(2);
    await expect.poll(() => page.locator('#replicas tbody').innerText()).toMatch(/1\.1\.0\s+running\s+ready/);
    await expect.poll(() => page.locator('#diff').innerText()).toContain('web');
    await expect.poll(() => page.locator('#history').innerText()).toMatch(/configured 1\.0\.0 → 1\.1\.0/);
    await expect.poll(() => page.locator('#events').innerText()).toContain('app.changed');
    await expect.poll(() => page.locator('#logs').innerText()).toContain('listening on');
    await page.screenshot({ path: join(shots, '3-app.png'), fullPage: true });
  });

  it('disables Rollback with the reason when the ops repository is a working copy', async () => {
    const rollback = page.locator('#action-rollback');
    await rollback.waitFor();
    expect(await rollback.isDisabled()).toBe(true);
    expect(await page.locator('#rollback-why').innerText()).toBe(`Rollback unavailable: the ops repository at ${ops} is a working copy; use keelson rollback/update there, or point Keelson at a bare or hosted repository`);
  });

  it('pauses and resumes the app; the audit log records who did it', async () => {
    await page.getByRole('button', { name: 'Pause' }).click();
    await expect.poll(() => page.locator('.summary').innerText()).toMatch(/Suspended[\s\S]*Paused/);
    const detail = await getJsonWith(`${api}/api/v1/environments/dev/apps/web`, adminToken);
    expect(detail).toMatchObject({ paused: true, app: { health: 'Suspended' } });
    await page.getByRole('button', { name: 'Resume' }).click();
    await expect.poll(() => page.locator('.summary').innerText()).toMatch(/Healthy/);
    await page.getByRole('button', { name: 'Sync now' }).click();
    await expect.poll(() => page.locator('#announce').innerText()).toMatch(/sync (Unchanged|Succeeded)/);
    await page.getByRole('link', { name: 'Audit log' }).click();
    await expect.poll(() => page.locator('#audit tbody').innerText()).toMatch(/alice\s+admin\s+pause\s+\/api\/v1\/environments\/dev\/apps\/web\/pause\s+✓?\s*succeeded/);
    const text = await page.locator('#audit tbody').innerText();
    expect(text).toMatch(/alice\s+admin\s+resume/);
    expect(text).toMatch(/alice\s+admin\s+sync/);
    expect(text).toMatch(/webhook\s+—\s+webhook/);
    await page.screenshot({ path: join(shots, '4-audit.png'), fullPage: true });
  });

  it('offers no actions to a viewer, and the API refuses them', async () => {
    const viewer = await browser.context.newPage();
    await viewer.goto(api + '/#/app/dev/web');
    await viewer.evaluate((t) => sessionStorage.setItem('keelson.token', t), viewerToken);
    await viewer.reload();
    await viewer.locator('#replicas tbody tr').first().waitFor();
    expect(await viewer.getByRole('button', { name: 'Sync now' }).count()).toBe(0);
    expect(await viewer.locator('#nav-audit').isHidden()).toBe(true);
    const res = await fetch(`${api}/api/v1/environments/dev/sync`, { method: 'POST', headers: auth(viewerToken) });
    expect(res.status).toBe(403);
    expect((await res.json()).message).toBe('token "victor" has role viewer; this needs operator');
    await viewer.close();
  });

  it('exposes proxy requests per app and version, and the documented metrics', async () => {
    for (let i = 0; i < 5; i++) expect(await (await fetch(`http://127.0.0.1:${appPort}/`)).text()).toBe('version 1.1.0 \n');
    const metrics = await (await fetch(`${api}/metrics`, { headers: auth(viewerToken) })).text();
    expect(metrics).toMatch(/^keelson_proxy_requests_total\{env="dev",app="web",version="1\.1\.0"\} ([5-9]|\d\d+)$/m);
    expect(metrics).toMatch(/^keelson_proxy_request_duration_seconds_count\{env="dev",app="web",version="1\.1\.0"\} \d+$/m);
    expect(metrics).toMatch(/^keelson_app_health\{env="dev",app="web",status="Healthy"\} 1$/m);
    for (const name of ['keelson_reconcile_duration_seconds', 'keelson_sync_total', 'keelson_drift_events_total', 'keelson_git_fetch_duration_seconds', 'keelson_process_restarts_total']) expect(metrics).toContain(name);
    expect((await fetch(`${api}/metrics`)).status).toBe(401);
  });

  it('keelson sync shows progress; keelson status --watch redraws a live table', async () => {
    const sync = await runCliAsync(['sync', '--env', 'dev', '--server', api, '--token', adminToken]);
    expect(sync.code).toBe(0);
    expect(sync.stderr).toContain('syncing dev…');
    expect(sync.stdout).toMatch(/^(Unchanged|Succeeded): /);
    expect(runCli(['sync', '--env', 'dev', '--server', api]).stderr).toContain('authentication required');
    const watch = spawn(process.execPath, [join(root, 'bin', 'keelson'), 'status', '--watch', '--server', api, '--token', viewerToken], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    watch.stdout!.on('data', (c) => (out += c));
    try {
      await waitFor('first frame', () => /web\s+1\.1\.0\s+Synced\s+Healthy/.test(out));
      expect(out).toMatch(/keelson status --watch .* live/);
      const frames = out.split('keelson status --watch').length;
      await fetch(`${api}/api/v1/environments/dev/apps/web/pause`, { method: 'POST', headers: auth(adminToken) });
      await waitFor('a new frame with the paused app', () => out.split('keelson status --watch').length > frames && /web\s+1\.1\.0\s+Synced\s+Suspended/.test(out));
      await fetch(`${api}/api/v1/environments/dev/apps/web/resume`, { method: 'POST', headers: auth(adminToken) });
    } finally {
      watch.kill('SIGINT');
    }
  });

  async function getJsonWith(url: string, token: string) {
    const res = await fetch(url, { headers: auth(token) });
    if (!res.ok) throw new Error(`${url}: ${res.status}`);
    return res.json();
  }
});
