/** HTTPS in the proxy: SNI, redirects, HSTS, ACME challenge answers, hot certificate swap, forwarding headers. */
import fs from 'node:fs/promises';
import https from 'node:https';
import tls from 'node:tls';

import path from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import { createLogger, silentLogger } from '../../../log.js';
import { ProxyClient } from './client.js';
import type { RouteTable } from './protocol.js';
import { startProxy } from './server.js';
import { freePort, httpsRequest, request, selfSignedCertificate, startBackend, tempSocketPath, type TestBackend } from './testing.js';

async function setup(log = silentLogger()) {
  const { dir, socketPath } = await tempSocketPath();
  onTestFinished(() => fs.rm(dir, { recursive: true, force: true }));
  const proxy = await startProxy({ socketPath, log, closeGraceMs: 2_000 });
  onTestFinished(() => proxy.close({ force: true }));
  const web = { http: await freePort(), https: await freePort() };
  return { dir, proxy, client: new ProxyClient(socketPath), web };
}

async function backend(name: string): Promise<TestBackend> {
  const b = await startBackend(name);
  onTestFinished(() => b.close());
  return b;
}

describe('proxy HTTPS', () => {
  test('serves two hosts with their own certificates by SNI, redirects HTTP to HTTPS with 308 and sets HSTS', async () => {
    const { dir, client, web } = await setup();
    const [shop, blog, plain] = await Promise.all([backend('shop'), backend('blog'), backend('plain')]);
    const shopCert = await selfSignedCertificate(dir, 'shop', ['shop.test']);
    const blogCert = await selfSignedCertificate(dir, 'blog', ['blog.test']);
    const table: RouteTable = {
      web,
      routes: [
        { key: 'prod/shop', hosts: ['shop.test'], tls: { hstsMaxAgeSeconds: 31536000 }, backends: [{ id: 's', url: shop.url, version: '1' }] },
        { key: 'prod/blog', hosts: ['Blog.test'], tls: {}, backends: [{ id: 'b', url: blog.url, version: '1' }] },
        { key: 'prod/plain', hosts: ['plain.test'], backends: [{ id: 'p', url: plain.url, version: '1' }] },
      ],
      certificates: [
        { hosts: ['shop.test'], certFile: shopCert.certFile, keyFile: shopCert.keyFile },
        { hosts: ['blog.test'], certFile: blogCert.certFile, keyFile: blogCert.keyFile },
      ],
    };
    const status = await client.putRoutes(table);
    expect(status.routes.every((r) => r.listening)).toBe(true);
    expect(status.certificates?.map((c) => [c.hosts, c.loaded, c.error])).toEqual([[['shop.test'], true, undefined], [['blog.test'], true, undefined]]);

    const s = await httpsRequest(web.https, 'shop.test', shopCert.pem, { path: '/echo' });
    expect(s.status).toBe(200);
    expect(JSON.parse(s.body).name).toBe('shop');
    expect(s.headers['strict-transport-security']).toBe('max-age=31536000');
    const b = await httpsRequest(web.https, 'blog.test', blogCert.pem);
    expect(b.body).toBe('blog');
    expect(b.headers['strict-transport-security']).toBeUndefined();
    expect(b.serial).not.toBe(s.serial);
    // A name without a certificate gets no handshake; a client that does not trust the certificate refuses it.
    await expect(httpsRequest(web.https, 'plain.test', shopCert.pem)).rejects.toThrow();
    await expect(httpsRequest(web.https, 'shop.test', blogCert.pem)).rejects.toThrow();

    const redirected = await request(web.http, { path: '/cart?x=1', headers: { host: 'shop.test' } });
    expect(redirected.status).toBe(308);
    expect(redirected.headers.location).toBe(`https://shop.test:${web.https}/cart?x=1`);
    const plainHttp = await request(web.http, { headers: { host: 'plain.test' } });
    expect(plainHttp).toMatchObject({ status: 200, body: 'plain' });
  });

  test('a TLS host without a certificate yet is served on plain HTTP; ACME challenges are answered on the HTTP port', async () => {
    const { client, web } = await setup();
    const shop = await backend('shop');
    await client.putRoutes({
      web,
      routes: [{ key: 'prod/shop', hosts: ['shop.test'], tls: {}, backends: [{ id: 's', url: shop.url, version: '1' }] }],
      challenges: { tok_EN1: 'tok_EN1.thumbprint' },
    });
    expect(await request(web.http, { headers: { host: 'shop.test' } })).toMatchObject({ status: 200, body: 'shop' });
    const answer = await request(web.http, { path: '/.well-known/acme-challenge/tok_EN1', headers: { host: 'shop.test' } });
    expect(answer).toMatchObject({ status: 200, body: 'tok_EN1.thumbprint' });
    // Unknown tokens go to the app like any other path.
    expect((await request(web.http, { path: '/.well-known/acme-challenge/other', headers: { host: 'shop.test' } })).body).toBe('shop');
  });

  test('TLS-ALPN-01: a client asking for acme-tls/1 gets the challenge certificate, every other one the served one', async () => {
    const { dir, client, web } = await setup();
    const shop = await backend('shop');
    const served = await selfSignedCertificate(dir, 'served', ['shop.test']);
    const challenge = await selfSignedCertificate(dir, 'challenge', ['shop.test']);
    await client.putRoutes({
      web,
      routes: [{ key: 'prod/shop', hosts: ['shop.test'], tls: {}, backends: [{ id: 's', url: shop.url, version: '1' }] }],
      certificates: [{ hosts: ['shop.test'], certFile: served.certFile, keyFile: served.keyFile }],
      alpnChallenges: { 'shop.test': { cert: challenge.pem, key: await fs.readFile(challenge.keyFile, 'utf8') } },
    });
    const validator = await new Promise<{ protocol: string | false | null; serial: string }>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: web.https, servername: 'shop.test', ca: challenge.pem, ALPNProtocols: ['acme-tls/1'] }, () => {
        resolve({ protocol: s.alpnProtocol, serial: s.getPeerCertificate().serialNumber });
        s.end();
      });
      s.on('error', reject);
    });
    const normal = await httpsRequest(web.https, 'shop.test', served.pem);
    expect(validator.protocol).toBe('acme-tls/1');
    expect(validator.serial).not.toBe(normal.serial);
    expect(normal.body).toBe('shop');
  });

  test('a certificate that does not match its key is refused and the previous one stays in service; no key is logged', async () => {
    const lines: string[] = [];
    const { dir, client, web } = await setup(createLogger({ level: 'debug', format: 'json', out: { write: (l: string) => lines.push(l) } }));
    const shop = await backend('shop');
    const good = await selfSignedCertificate(dir, 'good', ['shop.test']);
    const other = await selfSignedCertificate(dir, 'other', ['shop.test']);
    const routes: RouteTable['routes'] = [{ key: 'prod/shop', hosts: ['shop.test'], tls: {}, backends: [{ id: 's', url: shop.url, version: '1' }] }];
    await client.putRoutes({ web, routes, certificates: [{ hosts: ['shop.test'], certFile: good.certFile, keyFile: good.keyFile }] });
    await fs.copyFile(other.keyFile, good.keyFile);
    const status = await client.putRoutes({ web, routes, certificates: [{ hosts: ['shop.test'], certFile: good.certFile, keyFile: good.keyFile }] });
    expect(status.certificates?.[0]).toMatchObject({ loaded: true });
    expect(status.certificates?.[0].error).toMatch(/good\.crt cannot be used with its key/);
    expect(status.certificates?.[0].error).not.toMatch(/PRIVATE KEY/);
    expect((await httpsRequest(web.https, 'shop.test', good.pem)).body).toBe('shop');
    const logged = lines.join('');
    expect(logged).toContain('certificate not loaded');
    const keyBody = (await fs.readFile(other.keyFile, 'utf8')).split('\n')[1];
    expect(logged).not.toContain(keyBody);
    expect(logged).not.toMatch(/PRIVATE KEY/);
  });

  test('a renewed certificate is swapped in under load with no failed request; open connections keep theirs', async () => {
    const { dir, client, web } = await setup();
    const shop = await backend('shop');
    const first = await selfSignedCertificate(dir, 'first', ['shop.test']);
    const second = await selfSignedCertificate(path.join(dir), 'second', ['shop.test']);
    const live = { certFile: path.join(dir, 'live.crt'), keyFile: path.join(dir, 'live.key') };
    await fs.copyFile(first.certFile, live.certFile);
    await fs.copyFile(first.keyFile, live.keyFile);
    const table = (): RouteTable => ({
      web,
      routes: [{ key: 'prod/shop', hosts: ['shop.test'], tls: {}, backends: [{ id: 's', url: shop.url, version: '1' }] }],
      certificates: [{ hosts: ['shop.test'], ...live }],
    });
    await client.putRoutes(table());
    const ca = [first.pem, second.pem];
    const kept = new https.Agent({ keepAlive: true, maxSockets: 1 });
    onTestFinished(() => kept.destroy());
    const before = await httpsRequest(web.https, 'shop.test', ca, { agent: kept });

    // Bounded load: 4 loops of new connections and 1 keep-alive loop, until the swap is seen or 400 requests.
    const failures: string[] = [];
    const serials = new Set<string>();
    let swapped = false;
    let sent = 0;
    const loop = async (agent: https.Agent | undefined) => {
      while (!swapped && sent < 400) {
        sent++;
        try {
          const r = await httpsRequest(web.https, 'shop.test', ca, agent ? { agent } : {});
          if (r.status !== 200) failures.push(`status ${r.status}`);
          if (!agent) serials.add(r.serial);
          if (!agent && r.serial !== before.serial) swapped = true;
        } catch (err) {
          failures.push(String(err));
        }
      }
    };
    const load = Promise.all([loop(undefined), loop(undefined), loop(undefined), loop(undefined), loop(kept)]);
    // Atomic replacement of the files, as the engine writes them, then a table update.
    await fs.copyFile(second.keyFile, `${live.keyFile}.tmp`);
    await fs.copyFile(second.certFile, `${live.certFile}.tmp`);
    await fs.rename(`${live.keyFile}.tmp`, live.keyFile);
    await fs.rename(`${live.certFile}.tmp`, live.certFile);
    await client.putRoutes(table());
    await load;
    expect(failures).toEqual([]);
    expect(swapped).toBe(true);
    expect(serials.size).toBeGreaterThanOrEqual(1);
    // The kept-alive connection was established before the swap and still carries the first certificate.
    const after = await httpsRequest(web.https, 'shop.test', ca, { agent: kept });
    expect(after.reused).toBe(true);
    expect(after.serial).toBe(before.serial);
    expect((await httpsRequest(web.https, 'shop.test', ca)).serial).not.toBe(before.serial);
  });

  test('forwarding headers: set by the proxy, a client cannot forge them unless its address is trusted', async () => {
    const { dir, client, web } = await setup();
    const shop = await backend('shop');
    const cert = await selfSignedCertificate(dir, 'shop', ['shop.test']);
    const forged = { 'x-forwarded-for': '6.6.6.6', 'x-real-ip': '6.6.6.6', forwarded: 'for=6.6.6.6', 'x-forwarded-proto': 'gopher', 'x-forwarded-host': 'evil.test' };
    const routes: RouteTable['routes'] = [{ key: 'prod/shop', hosts: ['shop.test'], tls: {}, backends: [{ id: 's', url: shop.url, version: '1' }] }];
    const certificates = [{ hosts: ['shop.test'], certFile: cert.certFile, keyFile: cert.keyFile }];
    await client.putRoutes({ web, routes, certificates });
    const seen = JSON.parse((await httpsRequest(web.https, 'shop.test', cert.pem, { path: '/echo', headers: forged })).body).headers;
    expect(seen).toMatchObject({ 'x-forwarded-for': '127.0.0.1', 'x-real-ip': '127.0.0.1', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'shop.test' });
    expect(seen.forwarded).toBeUndefined();

    await client.putRoutes({ web, routes, certificates, trustedProxies: ['127.0.0.1'] });
    const trusted = JSON.parse((await httpsRequest(web.https, 'shop.test', cert.pem, { path: '/echo', headers: forged })).body).headers;
    expect(trusted).toMatchObject({ 'x-forwarded-for': '6.6.6.6, 127.0.0.1', 'x-real-ip': '6.6.6.6', 'x-forwarded-proto': 'https' });
    expect(trusted.forwarded).toBeUndefined();
  });
});


