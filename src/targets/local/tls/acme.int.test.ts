/**
 * HTTPS with certificates from a real ACME server (Pebble), through a real engine, the local target and the proxy
 * process: HTTP-01 validated by Pebble against the proxy's HTTP port, names resolved by the test's DNS responder.
 */
import { copyFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { appServer, commitAll, freePort, gitInit, tempDir, waitFor, writeTree } from '../../../../test/helpers.js';
import { pebbleCertsDir, pebbleSuite, startLoopbackDns, startPebble, type Pebble } from '../../../../test/pebble.js';
import { Engine } from '../../../engine/engine.js';
import { EventBus, type Stamped } from '../../../core/events.js';
import { silentLogger } from '../../../log.js';
import { registerCertificateMetrics } from '../../../metrics/certificate-metrics.js';
import { Store } from '../../../store/store.js';
import { LocalTarget, type LocalTargetOptions } from '../local-target.js';
import { httpsRequest, request } from '../proxy/testing.js';

const app = (name: string, extra: string) => `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: ${name} }
spec:
  version: "1.0.0"
  artifact: { path: releases/${name} }
  run: { command: ["node", "server.js"] }
  readiness: { http: { path: /healthz } }
${extra}---
`;

pebbleSuite('HTTPS with ACME certificates (Pebble)', () => {
  const tmp = tempDir('keelson-acme-');
  const ops = join(tmp.dir, 'ops');
  const state = join(tmp.dir, 'state');
  let web: { http: number; https: number };
  let dns: Awaited<ReturnType<typeof startLoopbackDns>>;
  let pebble: Pebble;
  let root: string;
  let h: { store: Store; bus: EventBus; target: LocalTarget; engine: Engine; events: Stamped[] };

  function boot(acme: LocalTargetOptions['acme'] = {}) {
    const log = silentLogger();
    const store = new Store(state);
    const bus = new EventBus();
    const events: Stamped[] = [];
    bus.subscribe((e) => events.push(e));
    let engine: Engine | undefined;
    const target = new LocalTarget({ stateDir: state, store, bus, log, requeue: (env) => engine?.requeue(env), proxy: { web }, acme: { retryBaseMs: 500, ...acme } });
    engine = new Engine({ repo: ops, stateDir: state, log, store, bus, target, pollMs: 60_000 });
    return { store, bus, target, engine, events };
  }

  const certificates = async () => (await h.engine.status('prod')).environments[0]?.apps.flatMap((a) => (a.certificates ?? []).map((c) => ({ app: a.name, ...c }))) ?? [];

  async function restart(acme: LocalTargetOptions['acme'] = {}) {
    await h.engine.stop();
    h.store.close();
    h = boot(acme);
    await h.engine.start();
  }

  beforeAll(async () => {
    web = { http: await freePort(), https: await freePort() };
    dns = await startLoopbackDns();
    pebble = await startPebble(tmp.dir, { httpPort: web.http, tlsPort: web.https, dnsPort: dns.port });
    const tls = (challenge = 'http-01') => `  tls:\n    acme: { email: ops@shop.test, directory: "${pebble.directory}", caFile: ca/pebble.minica.pem, challenge: ${challenge} }\n`;
    writeTree(ops, {
      'apps.yaml':
        app('shop', `  hosts: [shop.test]\n${tls()}    hsts: true\n`) +
        app('blog', `  hosts: [blog.test, www.blog.test]\n${tls()}`) +
        app('api', `  hosts: [api.test]\n${tls('tls-alpn-01')}`),
      'env.yaml': 'apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: prod }\nspec:\n  apps: { shop: {}, blog: {}, api: {} }\n',
      'releases/shop/server.js': appServer('shop-1'),
      'releases/blog/server.js': appServer('blog-1'),
      'releases/api/server.js': appServer('api-1'),
      'ca/README': 'the CA of the ACME directory\n',
    });
    copyFileSync(join(pebbleCertsDir()!, 'pebble.minica.pem'), join(ops, 'ca', 'pebble.minica.pem'));
    gitInit(ops);
    commitAll(ops, 'shop and blog on HTTPS');
    h = boot();
    await h.engine.start();
    await waitFor('certificates issued', async () => {
      const c = await certificates();
      return c.length === 3 && c.every((x) => x.state === 'Ready');
    }, 60_000).catch(async (err: Error) => {
      const status = JSON.stringify((await h.engine.status('prod')).environments[0]?.apps.map((a) => [a.name, a.health, a.message, a.certificates]));
      const probe = await request(web.http, { path: '/.well-known/acme-challenge/x', headers: { host: 'shop.test' } }).then((r) => `${r.status} ${JSON.stringify(r.headers)} ${r.body}`, (e) => String(e));
      const routes = JSON.stringify(await h.target.proxy.routes().catch((e) => String(e)));
      throw new Error(`${err.message}\nweb: ${JSON.stringify(web)} probe: ${probe}\nroutes: ${routes}\nstatus: ${status}\npebble: ${pebble.output.slice(-15).join('\n')}`);
    });
    root = await pebble.root();
  }, 120_000);

  afterAll(async () => {
    await h?.engine.stop();
    await h?.target.supervisor.stopAll();
    await h?.target.proxy.stop();
    h?.store.close();
    await pebble?.stop();
    await dns?.close();
    tmp.cleanup();
  });

  test('a certificate is issued over TLS-ALPN-01, answered on the HTTPS port', async () => {
    // Pebble resolved and validated api.test, and never over HTTP (it logs HTTP validations only).
    expect(dns.queries.some((q) => q.startsWith('api.test/'))).toBe(true);
    expect(pebble.output.some((l) => l.includes('validate w/ HTTP: http://api.test'))).toBe(false);
    expect(pebble.output.some((l) => l.includes('validate w/ HTTP: http://shop.test'))).toBe(true);
    const api = await httpsRequest(web.https, 'api.test', root);
    expect(api.body).toContain('version api-1');
  });

  test('certificates are issued over HTTP-01 and served by SNI; HTTP is redirected to HTTPS', async () => {
    // Pebble resolved the names through the test's DNS responder and validated on the proxy's HTTP port.
    expect(dns.queries.some((q) => q.startsWith('shop.test/'))).toBe(true);
    const shop = await httpsRequest(web.https, 'shop.test', root);
    expect(shop.status).toBe(200);
    expect(shop.body).toContain('version shop-1');
    expect(shop.headers['strict-transport-security']).toBe('max-age=31536000');
    const blog = await httpsRequest(web.https, 'www.blog.test', root);
    expect(blog.body).toContain('version blog-1');
    expect(blog.serial).not.toBe(shop.serial);
    const redirect = await request(web.http, { path: '/a?b=1', headers: { host: 'shop.test' } });
    expect(redirect.status).toBe(308);
    expect(redirect.headers.location).toBe(`https://shop.test:${web.https}/a?b=1`);
  });

  test('status and /metrics show issuer, expiry and last renewal; keys are 0600 in 0700 directories', async () => {
    const [, blog, shop] = (await certificates()).sort((a, b) => a.app.localeCompare(b.app));
    expect(shop).toMatchObject({ app: 'shop', hosts: ['shop.test'], source: 'acme', state: 'Ready', serving: true, lastError: null });
    expect(blog.hosts).toEqual(['blog.test', 'www.blog.test']);
    expect(shop.issuer).toMatch(/Pebble/);
    expect(Date.parse(shop.notAfter!)).toBeGreaterThan(Date.now());
    expect(shop.lastRenewal).not.toBeNull();
    const registry = new Registry();
    registerCertificateMetrics(registry, () => h.target.tls.views());
    const text = await registry.metrics();
    expect(text).toMatch(/keelson_certificate_expiry_seconds\{env="prod",app="shop",host="shop.test"\} \d+/);
    expect(text).toMatch(/keelson_certificate_failing\{env="prod",app="blog",host="www.blog.test"\} 0/);

    const { statSync, readdirSync } = await import('node:fs');
    const certsDir = join(state, 'tls', 'acme', 'certs');
    expect(statSync(join(state, 'tls')).mode & 0o777).toBe(0o700);
    for (const d of readdirSync(certsDir)) {
      expect(statSync(join(certsDir, d)).mode & 0o777).toBe(0o700);
      expect(statSync(join(certsDir, d, 'key.pem')).mode & 0o777).toBe(0o600);
    }
  });

  test('a restarted engine serves the same certificates and orders none', async () => {
    const before = await httpsRequest(web.https, 'shop.test', root);
    const ordersBefore = pebble.output.filter((l) => l.includes('POST /order-plz')).length;
    await restart();
    await waitFor('certificates found on disk', async () => (await certificates()).filter((c) => c.state === 'Ready').length === 3, 30_000);
    await h.target.tls.idle();
    expect(h.events.filter((e) => e.type === 'certificate.issued')).toEqual([]);
    expect(pebble.output.filter((l) => l.includes('POST /order-plz')).length).toBe(ordersBefore);
    expect((await httpsRequest(web.https, 'shop.test', root)).serial).toBe(before.serial);
  });

  test('a renewal swaps the certificate during a request loop with no failed request', async () => {
    const before = await httpsRequest(web.https, 'shop.test', root);
    // Renew when less than (lifetime - 1 s) remains: due at once, as a certificate near its end would be.
    await restart({ renewBeforeMs: 3599_000 });
    const failures: string[] = [];
    let swapped = false;
    let sent = 0;
    const agent = new https.Agent({ keepAlive: true });
    const loop = async (a: https.Agent | undefined) => {
      while (!swapped && sent < 3000) {
        sent++;
        try {
          const r = await httpsRequest(web.https, 'shop.test', root, a ? { agent: a } : {});
          if (r.status !== 200) failures.push(`status ${r.status}`);
          if (r.serial !== before.serial && !r.reused) swapped = true;
        } catch (err) {
          failures.push(String(err));
        }
      }
    };
    await Promise.all([loop(undefined), loop(undefined), loop(agent)]);
    agent.destroy();
    expect(failures).toEqual([]);
    expect(swapped).toBe(true);
    expect(h.events.some((e) => e.type === 'certificate.issued' && e.renewal)).toBe(true);
  }, 60_000);
});
