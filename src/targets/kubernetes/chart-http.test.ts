/** Chart source references and HTTP answers, against real servers on 127.0.0.1 (no tools needed). */
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { TerminalError, TransientError } from '../../core/errors.js';
import { isLoopbackHost } from './chart-http.js';
import { fetchChart } from './chart-source.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
async function cacheDir(): Promise<string> {
  const d = await mkdtemp(path.join(tmpdir(), 'keelson-chart-cache-'));
  dirs.push(d);
  return d;
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

/** A real server answering each path with a status (and headers). */
async function serve(routes: Record<string, { status: number; headers?: Record<string, string>; body?: string }>): Promise<{ url: string; requests: string[] }> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req.url ?? '');
    const r = routes[req.url ?? ''] ?? { status: 404 };
    res.writeHead(r.status, r.headers).end(r.body ?? '');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

describe('chart references', () => {
  it('refuses credentials in the URL, plain http off loopback, a missing name or version, a malformed pin', async () => {
    const cases: [Parameters<typeof fetchChart>[0], string][] = [
      [{ repo: 'https://user:secret@charts.example.com', name: 'web', version: '1.0.0' }, 'chart repository https://charts.example.com: credentials in the URL are refused (they would be stored in git); Keelson reads public chart sources only'],
      [{ repo: 'oci://user:secret@registry.example.com/charts/web', version: '1.0.0' }, 'OCI chart oci://registry.example.com/charts/web: credentials in the URL are refused (they would be stored in git); Keelson reads public chart sources only'],
      [{ repo: 'http://charts.example.com', name: 'web', version: '1.0.0' }, 'chart repository http://charts.example.com: plain http is only used for loopback hosts; use https://'],
      [{ repo: 'https://charts.example.com', version: '1.0.0' }, 'chart repository https://charts.example.com: name is required (the chart\'s name in the repository)'],
      [{ repo: 'oci://registry.example.com/charts/web', name: 'web', version: '1.0.0' }, 'chart oci://registry.example.com/charts/web: name is part of an oci:// URL (oci://registry/path/web); leave name out'],
      [{ repo: 'oci://registry.example.com/charts/web', version: ' ' }, 'chart oci://registry.example.com/charts/web: version is required (charts are pinned by version)'],
      [{ repo: 'oci://registry.example.com/charts/web', version: '1.0.0', digest: 'abc' }, 'chart oci://registry.example.com/charts/web: digest must be sha256:<64 hex digits>, got "abc"'],
      [{ repo: 'oci://registry.example.com', version: '1.0.0' }, 'OCI chart oci://registry.example.com: expected oci://registry/path/to/chart (lower-case repository path)'],
      [{ repo: 'ftp://charts.example.com', name: 'web', version: '1.0.0' }, 'chart repository ftp://charts.example.com: the URL must start with https:// or http://'],
    ];
    for (const [ref, message] of cases) {
      const err = await rejection(fetchChart(ref, { cacheDir: await cacheDir() }));
      expect(err).toBeInstanceOf(TerminalError);
      expect(err.message).toBe(message);
    }
  });

  it('knows loopback hosts', () => {
    expect(['127.0.0.1', '127.3.4.5', 'localhost', '[::1]', '::1'].every(isLoopbackHost)).toBe(true);
    expect(['10.0.0.1', '127.0.0.1.nip.io', 'localhost.example.com', '[::2]', '0.0.0.0'].some(isLoopbackHost)).toBe(false);
  });
});

describe('HTTP answers', () => {
  it('408, 429 and 5xx are transient; 404 for index.yaml says it is no chart repository; 401 says credentials are not supported', async () => {
    for (const [status, type, message] of [
      [503, TransientError, /^chart repository http:\/\/127\.0\.0\.1:\d+: index\.yaml: HTTP 503$/],
      [429, TransientError, /: HTTP 429$/],
      [408, TransientError, /: HTTP 408$/],
      [404, TerminalError, /^http:\/\/127\.0\.0\.1:\d+ is not a chart repository: index\.yaml: HTTP 404$/],
      [401, TerminalError, /: HTTP 401; the server wants credentials, and Keelson fetches charts anonymously for now$/],
    ] as const) {
      const server = await serve({ '/index.yaml': { status } });
      const err = await rejection(fetchChart({ repo: server.url, name: 'web', version: '1.0.0' }, { cacheDir: await cacheDir() }));
      expect(err).toBeInstanceOf(type);
      expect(err.message).toMatch(message);
    }
  });

  it('follows redirects on loopback, and refuses one to plain http elsewhere', async () => {
    const target = await serve({ '/real/index.yaml': { status: 200, body: 'apiVersion: v1\nentries: {}\n' } });
    const hop = await serve({
      '/index.yaml': { status: 302, headers: { location: `${target.url}/real/index.yaml` } },
      '/away/index.yaml': { status: 301, headers: { location: 'http://charts.example.com/index.yaml' } },
    });
    const followed = await rejection(fetchChart({ repo: hop.url, name: 'web', version: '1.0.0' }, { cacheDir: await cacheDir() }));
    expect(followed.message).toBe(`chart web not found in ${hop.url}; charts there: none`);
    expect(target.requests).toEqual(['/real/index.yaml']);
    const refused = await rejection(fetchChart({ repo: `${hop.url}/away`, name: 'web', version: '1.0.0' }, { cacheDir: await cacheDir() }));
    expect(refused).toBeInstanceOf(TerminalError);
    expect(refused.message).toBe(`chart repository ${hop.url}/away: index.yaml: redirected to plain http on charts.example.com; refused`);
  });

  it('a server that accepts and never answers is a transient error after the deadline', async () => {
    const server = http.createServer(() => undefined);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const err = await rejection(fetchChart({ repo: url, name: 'web', version: '1.0.0' }, { cacheDir: await cacheDir(), timeoutMs: 300 }));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toBe(`chart repository ${url}: index.yaml: no complete answer within 300 ms`);
  });
});
