import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { TerminalError, TransientError } from '../../core/errors.js';
import { fetchArtifact, unpackTarGz } from './artifact.js';

const cleanups: string[] = [];
afterEach(async () => {
  for (const d of cleanups.splice(0)) await rm(d, { recursive: true, force: true });
});

async function testdir(): Promise<string> {
  const d = await mkdtemp(path.join(tmpdir(), 'keelson-fetch-'));
  cleanups.push(d);
  return d;
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** A real server on 127.0.0.1:0 recording each request path and authorization header. */
async function serve(routes: Record<string, Handler>): Promise<{ base: string; requests: { url: string; auth?: string }[] }> {
  const requests: { url: string; auth?: string }[] = [];
  const server = http.createServer((req, res) => {
    requests.push({ url: req.url ?? '', auth: req.headers.authorization });
    const route = routes[(req.url ?? '').split('?')[0]];
    if (route) route(req, res);
    else res.writeHead(404).end('not found');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

async function makeTarball(root: string): Promise<{ body: Buffer; sha256: string }> {
  const src = path.join(root, 'src', 'app-1.0.0');
  await mkdir(src, { recursive: true });
  await writeFile(path.join(src, 'server.js'), 'console.log("hi")\n');
  const file = path.join(root, 'app.tar.gz');
  await tar.c({ gzip: true, file, cwd: path.join(root, 'src') }, ['app-1.0.0']);
  const body = await readFile(file);
  return { body, sha256: createHash('sha256').update(body).digest('hex') };
}

const send = (body: Buffer): Handler => (_req, res) => {
  res.writeHead(200, { 'content-type': 'application/gzip', 'content-length': body.length }).end(body);
};

describe('fetchArtifact', () => {
  it('downloads once, verifies, caches by sha256 and the result unpacks', async () => {
    const root = await testdir();
    const { body, sha256 } = await makeTarball(root);
    const { base, requests } = await serve({ '/app.tar.gz': send(body) });
    const cacheDir = path.join(root, 'cache');

    const first = await fetchArtifact({ url: `${base}/app.tar.gz`, sha256, cacheDir });
    const second = await fetchArtifact({ url: `${base}/app.tar.gz`, sha256: sha256.toUpperCase(), cacheDir });
    expect(first).toBe(path.join(cacheDir, `${sha256}.tar.gz`));
    expect(second).toBe(first);
    expect(requests).toHaveLength(1);
    expect(await readdir(cacheDir)).toEqual([`${sha256}.tar.gz`]);

    const dest = path.join(root, 'out');
    await unpackTarGz(first, dest);
    expect(await readFile(path.join(dest, 'server.js'), 'utf8')).toContain('hi');
  });

  it('downloads again when the cached file no longer matches its digest', async () => {
    const root = await testdir();
    const { body, sha256 } = await makeTarball(root);
    const { base, requests } = await serve({ '/app.tar.gz': send(body) });
    const cacheDir = path.join(root, 'cache');
    const file = await fetchArtifact({ url: `${base}/app.tar.gz`, sha256, cacheDir });
    await writeFile(file, 'tampered');
    await fetchArtifact({ url: `${base}/app.tar.gz`, sha256, cacheDir });
    expect(requests).toHaveLength(2);
    expect(await readFile(file)).toEqual(body);
  });

  it('rejects a digest mismatch naming URL, expected and actual digest, and caches nothing', async () => {
    const root = await testdir();
    const { body, sha256 } = await makeTarball(root);
    const { base } = await serve({ '/app.tar.gz': send(body) });
    const cacheDir = path.join(root, 'cache');
    const wrong = 'a'.repeat(64);
    const err = await fetchArtifact({ url: `${base}/app.tar.gz`, sha256: wrong, cacheDir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TerminalError);
    const msg = (err as Error).message;
    expect(msg).toContain(`${base}/app.tar.gz`);
    expect(msg).toContain(wrong);
    expect(msg).toContain(sha256);
    expect(await readdir(cacheDir)).toEqual([]);
  });

  it('fails clearly on HTTP 404 and 500', async () => {
    const root = await testdir();
    const { base } = await serve({ '/boom': (_req, res) => res.writeHead(500).end('oops') });
    const cacheDir = path.join(root, 'cache');
    const sha256 = 'b'.repeat(64);
    const notFound = await fetchArtifact({ url: `${base}/missing.tar.gz`, sha256, cacheDir }).catch((e: unknown) => e);
    expect(notFound).toBeInstanceOf(TerminalError);
    expect((notFound as Error).message).toMatch(/missing\.tar\.gz download failed: HTTP 404/);
    const serverError = await fetchArtifact({ url: `${base}/boom`, sha256, cacheDir }).catch((e: unknown) => e);
    expect(serverError).toBeInstanceOf(TransientError);
    expect((serverError as Error).message).toMatch(/HTTP 500/);
    expect(await readdir(cacheDir)).toEqual([]);
  });

  it('follows redirects up to the limit', async () => {
    const root = await testdir();
    const { body, sha256 } = await makeTarball(root);
    const redirect = (to: string): Handler => (_req, res) => res.writeHead(302, { location: to }).end();
    const { base, requests } = await serve({
      '/r1': redirect('/r2'),
      '/r2': redirect('/app.tar.gz'),
      '/app.tar.gz': send(body),
      '/loop': redirect('/loop'),
    });
    const cacheDir = path.join(root, 'cache');
    await fetchArtifact({ url: `${base}/r1`, sha256, cacheDir });
    expect(requests.map((r) => r.url)).toEqual(['/r1', '/r2', '/app.tar.gz']);

    const err = await fetchArtifact({ url: `${base}/loop`, sha256: 'c'.repeat(64), cacheDir }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/more than 5 redirects/);
    expect(requests.filter((r) => r.url === '/loop')).toHaveLength(6);
  });

  it('sends URL credentials as basic auth and never echoes them', async () => {
    const root = await testdir();
    const { base, requests } = await serve({});
    const url = base.replace('http://', 'http://deploy:hunter2@') + '/private.tar.gz?token=xyz';
    const err = await fetchArtifact({ url, sha256: 'd'.repeat(64), cacheDir: path.join(root, 'cache') }).catch(
      (e: unknown) => e,
    );
    expect(requests[0].auth).toBe(`Basic ${Buffer.from('deploy:hunter2').toString('base64')}`);
    const msg = (err as Error).message;
    expect(msg).toMatch(/HTTP 404/);
    expect(msg).not.toContain('hunter2');
    expect(msg).not.toContain('deploy');
    expect(msg).not.toContain('xyz');
  });

  it('stops at maxBytes whether or not the server declares a length', async () => {
    const root = await testdir();
    const big = Buffer.alloc(64 * 1024, 1);
    const { base } = await serve({
      '/declared': send(big),
      '/chunked': (_req, res) => {
        res.writeHead(200);
        res.write(big.subarray(0, 32 * 1024));
        res.end(big.subarray(32 * 1024));
      },
    });
    const cacheDir = path.join(root, 'cache');
    const sha256 = createHash('sha256').update(big).digest('hex');
    for (const p of ['/declared', '/chunked']) {
      await expect(fetchArtifact({ url: base + p, sha256, cacheDir, maxBytes: 1024 })).rejects.toThrow(/1024 byte limit/);
    }
    expect(await readdir(cacheDir)).toEqual([]);
  });

  it('gives up after timeoutMs on a server that never answers', async () => {
    const root = await testdir();
    const { base } = await serve({ '/hang': () => {} });
    const cacheDir = path.join(root, 'cache');
    const err = await fetchArtifact({ url: `${base}/hang`, sha256: 'e'.repeat(64), cacheDir, timeoutMs: 200 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
    expect((err as Error).message).toMatch(/timed out after 200 ms/);
    expect(await readdir(cacheDir)).toEqual([]);
  });

  it('refuses non-http URLs and malformed digests', async () => {
    const cacheDir = path.join(await testdir(), 'cache');
    await expect(fetchArtifact({ url: 'file:///etc/passwd', sha256: 'f'.repeat(64), cacheDir })).rejects.toThrow(
      /only http and https/,
    );
    await expect(fetchArtifact({ url: 'http://127.0.0.1/x', sha256: 'abc', cacheDir })).rejects.toThrow(/64 hex digits/);
  });
});
