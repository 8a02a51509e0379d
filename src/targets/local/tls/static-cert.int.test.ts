/**
 * A certificate kept SOPS-encrypted in the ops repository, served by the proxy for the app's hosts; a certificate that
 * does not match its key or has expired fails the apply with the file's name and leaves the served one in place.
 */
import { statSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { appServer, commitAll, freePort, gitInit, tempDir, waitFor, writeTree } from '../../../../test/helpers.js';
import { Engine } from '../../../engine/engine.js';
import { EventBus } from '../../../core/events.js';
import { silentLogger } from '../../../log.js';
import { generateKey } from '../../../secrets/age-keys.js';
import { encryptSops, parsePlain } from '../../../secrets/sops.js';
import { Store } from '../../../store/store.js';
import { LocalTarget } from '../local-target.js';
import { httpsRequest, request, selfSignedCertificate, type TestCertificate } from '../proxy/testing.js';

describe('a SOPS-encrypted certificate of the ops repository', () => {
  const tmp = tempDir('keelson-static-cert-');
  const ops = join(tmp.dir, 'ops');
  const state = join(tmp.dir, 'state');
  let web: { http: number; https: number };
  let recipient: string;
  let store: Store;
  let target: LocalTarget;
  let engine: Engine;
  let good: TestCertificate;

  const pemYaml = (cert: string, key: string) => `cert: |\n${indent(cert)}key: |\n${indent(key)}`;
  const indent = (pem: string) => pem.trimEnd().split('\n').map((l) => `  ${l}\n`).join('');
  const encrypted = async (cert: string, key: string) => encryptSops(parsePlain(pemYaml(cert, key), 'yaml', 'tls'), { format: 'yaml', recipients: [recipient] });
  const shop = async () => (await engine.status('prod')).environments[0]?.apps.find((a) => a.name === 'shop');

  beforeAll(async () => {
    web = { http: await freePort(), https: await freePort() };
    const key = await generateKey();
    recipient = key.recipient;
    writeFileSync(join(tmp.dir, 'age.txt'), key.file, { mode: 0o600 });
    process.env.KEELSON_AGE_KEY_FILE = join(tmp.dir, 'age.txt');
    writeTree(tmp.dir, { 'certs/README': 'test certificates\n' });
    good = await selfSignedCertificate(join(tmp.dir, 'certs'), 'good', ['shop.test', 'www.shop.test']);
    writeTree(ops, {
      'apps/shop.yaml': `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: shop }
spec:
  version: "1.0.0"
  artifact: { path: ../releases/shop }
  run: { command: ["node", "server.js"] }
  readiness: { http: { path: /healthz } }
  hosts: [shop.test, www.shop.test]
  tls:
    certificate:
      cert: { file: ../secrets/tls.enc.yaml, key: cert }
      key: { file: ../secrets/tls.enc.yaml, key: key }
    hsts: 600
`,
      'env.yaml': 'apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: prod }\nspec:\n  apps: { shop: {} }\n',
      'releases/shop/server.js': appServer('shop-1'),
      'secrets/tls.enc.yaml': await encrypted(good.pem, await readFile(good.keyFile, 'utf8')),
    });
    gitInit(ops);
    commitAll(ops, 'shop on HTTPS with its own certificate');
    const log = silentLogger();
    store = new Store(state);
    const bus = new EventBus();
    target = new LocalTarget({ stateDir: state, store, bus, log, requeue: (e) => engine.requeue(e), proxy: { web } });
    engine = new Engine({ repo: ops, stateDir: state, log, store, bus, target, pollMs: 60_000 });
    await engine.start();
    // The certificate is put in place right after the rollout.
    await waitFor('shop healthy, certificate served', async () => {
      const a = await shop();
      return a?.health === 'Healthy' && a.certificates?.[0]?.state === 'Ready';
    });
  });

  afterAll(async () => {
    await target?.supervisor.stopAll();
    await target?.proxy.stop();
    await engine?.stop();
    store?.close();
    delete process.env.KEELSON_AGE_KEY_FILE;
    tmp.cleanup();
  });

  test('is decrypted into the state dir (0600) and served for every host, with HSTS; HTTP redirects', async () => {
    const r = await httpsRequest(web.https, 'www.shop.test', good.pem);
    expect(r.status).toBe(200);
    expect(r.body).toContain('version shop-1');
    expect(r.headers['strict-transport-security']).toBe('max-age=600');
    expect((await request(web.http, { headers: { host: 'shop.test' } })).status).toBe(308);
    expect(statSync(join(state, 'tls', 'files', 'prod', 'shop', 'key.pem')).mode & 0o777).toBe(0o600);
    expect((await shop())?.certificates).toEqual([
      expect.objectContaining({ hosts: ['shop.test', 'www.shop.test'], source: 'file', state: 'Ready', serving: true, lastError: null, serial: r.serial }),
    ]);
  });

  test('a certificate that does not match its key, or has expired, fails the sync naming the file; the served one stays', async () => {
    const served = (await httpsRequest(web.https, 'shop.test', good.pem)).serial;
    const other = await selfSignedCertificate(join(tmp.dir, 'certs'), 'other', ['shop.test', 'www.shop.test']);
    const expired = await selfSignedCertificate(join(tmp.dir, 'certs'), 'expired', ['shop.test', 'www.shop.test'], { expired: true });
    const cases: [string, string, RegExp][] = [
      [good.pem, await readFile(other.keyFile, 'utf8'), /certificate secrets\/tls\.enc\.yaml#cert: the certificate does not match its key/],
      [expired.pem, await readFile(expired.keyFile, 'utf8'), /certificate secrets\/tls\.enc\.yaml#cert: the certificate expired on /],
    ];
    for (const [cert, key, message] of cases) {
      writeFileSync(join(ops, 'secrets', 'tls.enc.yaml'), await encrypted(cert, key));
      commitAll(ops, 'another certificate');
      await engine.refresh();
      const failed = await waitFor('sync failed', async () => {
        const a = await shop();
        return a?.sync === 'Failed' && message.test(a.message) ? a : undefined;
      });
      expect(failed.message).not.toMatch(/PRIVATE KEY|BEGIN/);
      expect(failed.health).toBe('Healthy');
      expect((await httpsRequest(web.https, 'shop.test', good.pem)).serial).toBe(served);
    }
  });
});
