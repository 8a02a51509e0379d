import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from '../browser.js';
import { appServer, commitAll, freePort, git, gitInit, root, runCli, startKeelson, stopProcess, tempDir, waitFor, webEnvironment, writeTree } from '../helpers.js';

/**
 * The dashboard's Rollback button in real Chromium against a real `keelson up` that tracks a bare remote: the button
 * names the revision it restores, asks for a reason, commits to the remote, and the old version comes back live.
 */
describe('dashboard rollback in Chromium', () => {
  const tmp = tempDir('keelson-ui-rollback-');
  const seed = join(tmp.dir, 'seed');
  const remote = join(tmp.dir, 'ops.git');
  const state = join(tmp.dir, 'state');
  const shots = join(root, 'test-output', 'dashboard-rollback');
  const token = 'kls_operator_token_for_rollback_0123456789';
  let api: string;
  let appPort: number;
  let keelson: ReturnType<typeof startKeelson>;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  let page: Page;
  const auth = { authorization: `Bearer ${token}` };

  const status = async () => (await fetch(`${api}/api/v1/status`, { headers: auth })).json();
  const web = async () => (await status()).environments?.[0]?.apps?.[0];

  beforeAll(async () => {
    mkdirSync(shots, { recursive: true });
    const apiPort = await freePort();
    appPort = await freePort();
    api = `http://127.0.0.1:${apiPort}`;
    writeTree(seed, {
      'apps/web.yaml': `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: web }
spec:
  version: "1.0.0"
  artifact:
    path: ../releases/web-{version}
  run: { command: ["node", "server.js"] }
  port: ${appPort}
  readiness: { http: { path: /healthz }, periodSeconds: 1 }
`,
      'environments/dev.yaml': webEnvironment('1.0.0'),
      'releases/web-1.0.0/server.js': appServer('1.0.0'),
      'releases/web-1.1.0/server.js': appServer('1.1.0'),
    });
    gitInit(seed);
    commitAll(seed, 'web 1.0.0');
    git(tmp.dir, 'init', '-q', '--bare', '-b', 'main', remote);
    git(seed, 'remote', 'add', 'origin', remote);
    git(seed, 'push', '-q', 'origin', 'main');
    const tokensFile = join(tmp.dir, 'tokens.yaml');
    writeFileSync(tokensFile, `tokens:\n  - { name: olivia, role: operator, sha256: ${createHash('sha256').update(token).digest('hex')} }\n`);
    keelson = startKeelson(['--repo', remote, '--state-dir', state, '--listen', `127.0.0.1:${apiPort}`, '--poll', '1s', '--tokens-file', tokensFile], join(tmp.dir, 'keelson.log'));
    await waitFor('web 1.0.0 healthy', async () => {
      const a = await web();
      return a?.version === '1.0.0' && a.health === 'Healthy';
    }, 60_000);
    writeTree(seed, { 'environments/dev.yaml': webEnvironment('1.1.0') });
    commitAll(seed, 'web 1.1.0');
    git(seed, 'push', '-q', 'origin', 'main');
    await waitFor('web 1.1.0 healthy', async () => {
      const a = await web();
      return a?.version === '1.1.0' && a.health === 'Healthy';
    }, 60_000);
    browser = await launchChromium();
    page = await browser.context.newPage();
  });

  afterAll(async () => {
    await browser?.close();
    if (keelson) await stopProcess(keelson);
    runCli(['down', '--state-dir', state]);
    tmp.cleanup();
  });

  it('commits the rollback to the bare remote and the old version appears', async () => {
    const before = git(remote, 'rev-parse', 'main');
    const first = git(remote, 'rev-parse', 'main~1');
    await page.goto(`${api}/#/app/dev/web`);
    await page.evaluate((t) => sessionStorage.setItem('keelson.token', t), token);
    await page.reload();
    const button = page.locator('#action-rollback');
    await expect.poll(() => button.innerText(), { timeout: 30_000 }).toBe(`Roll back to ${first.slice(0, 7)} (1.0.0)`);
    expect(await button.isEnabled()).toBe(true);
    await button.click();
    const dialog = page.getByRole('dialog', { name: 'Roll back web in dev?' });
    await dialog.waitFor();
    expect(await dialog.innerText()).toContain(`as at revision ${first.slice(0, 7)} (version 1.0.0)`);
    await page.screenshot({ path: join(shots, '1-confirm.png'), fullPage: true });
    await page.getByLabel('Reason (written into the commit)').fill('1.1.0 returns errors');
    await page.getByRole('button', { name: 'Commit rollback' }).click();

    await expect.poll(() => page.locator('.summary').innerText(), { timeout: 60_000 }).toMatch(/Version\s+1\.0\.0[\s\S]*Healthy/);
    const head = git(remote, 'rev-parse', 'main');
    expect(head).not.toBe(before);
    expect(git(remote, 'log', '-1', '--format=%an%n%B', 'main')).toMatch(/^Keelson\nRoll back web in dev to [0-9a-f]{7} \(1\.1\.0 → 1\.0\.0\)\n\nWho: olivia[\s\S]*Why: 1\.1\.0 returns errors/);
    expect(git(remote, 'show', `${head}:environments/dev.yaml`)).toContain('version: "1.0.0"');
    expect(await (await fetch(`http://127.0.0.1:${appPort}/`)).text()).toBe('version 1.0.0 \n');
    await expect.poll(() => page.locator('#events').innerText(), { timeout: 30_000 }).toContain('rollback.committed');
    await page.screenshot({ path: join(shots, '2-rolled-back.png'), fullPage: true });
  });
});
