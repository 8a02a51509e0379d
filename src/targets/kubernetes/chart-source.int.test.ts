/**
 * Remote charts against real chart sources: `helm package` + `helm repo index` served over HTTP on 127.0.0.1, and
 * the distribution registry with `helm push`. Run with the tools built:
 *
 *   eval "$(scripts/tools.sh env)" && npx vitest run src/targets/kubernetes/chart-source.int.test.ts
 */
import { createHash } from 'node:crypto';
import { cp, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, expect, it, onTestFinished } from 'vitest';
import { TerminalError, TransientError, ValidationError } from '../../core/errors.js';
import { isolatedHelm, serveChartRepo, startRegistry, toolSuite, writeChart, type IsolatedHelm, type Registry, type ServedRepo } from '../../../test/chart-repos.js';
import { ChartNotCachedError, fetchChart, resolveDependencies } from './chart-source.js';

const configMap = (name: string) => `apiVersion: v1
kind: ConfigMap
metadata:
  name: ${name}
data:
  chart: {{ .Chart.Name }}-{{ .Chart.Version }}
`;

const dirs: string[] = [];
async function tempDir(prefix: string): Promise<string> {
  const d = await mkdtemp(path.join(tmpdir(), `keelson-${prefix}-`));
  dirs.push(d);
  return d;
}
afterAll(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function sha256Of(file: string): Promise<string> {
  return `sha256:${createHash('sha256').update(await readFile(file)).digest('hex')}`;
}

async function chartYaml(dir: string): Promise<{ name: string; version: string }> {
  return parseYaml(await readFile(path.join(dir, 'Chart.yaml'), 'utf8'));
}

/** A server on 127.0.0.1, closed after the test. */
async function listen(handler: http.RequestListener): Promise<{ port: number }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))));
  return { port: (server.address() as AddressInfo).port };
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

toolSuite('fetchChart from an HTTP chart repository', ['helm'], () => {
  let helm: IsolatedHelm;
  let repoDir: string;
  let repo: ServedRepo;
  let tgz: string;

  beforeAll(async () => {
    helm = await isolatedHelm();
    const src = await tempDir('charts-src');
    repoDir = await tempDir('charts-repo');
    await helm.package(await writeChart(path.join(src, 'a'), { name: 'web', version: '1.0.0', templates: { 'cm.yaml': configMap('web') } }), repoDir);
    tgz = await helm.package(await writeChart(path.join(src, 'b'), { name: 'web', version: '1.1.0', templates: { 'cm.yaml': configMap('web') } }), repoDir);
    await helm.package(await writeChart(path.join(src, 'c'), { name: 'api', version: '0.3.0' }), repoDir);
    repo = await serveChartRepo(repoDir, helm);
  });
  afterAll(async () => {
    await repo?.close();
    await helm?.cleanup();
  });

  it('fetches a chart by version, verified against the index, unpacked in the cache', async () => {
    const cacheDir = await tempDir('cache');
    const before = repo.requests.length;
    const chart = await fetchChart({ repo: repo.url, name: 'web', version: '1.1.0' }, { cacheDir });
    expect(chart.digest).toBe(await sha256Of(tgz));
    expect(chart.packageDigest).toBe(chart.digest);
    expect(chart.dir.startsWith(cacheDir)).toBe(true);
    expect(await chartYaml(chart.dir)).toMatchObject({ name: 'web', version: '1.1.0' });
    expect(await readdir(path.join(chart.dir, 'templates'))).toEqual(['cm.yaml']);
    expect(repo.requests.slice(before)).toEqual(['/index.yaml', '/web-1.1.0.tgz']);
  });

  it('takes a version it has once fetched from the cache, without a request, also in a new process and when pinned', async () => {
    const cacheDir = await tempDir('cache');
    const first = await fetchChart({ repo: `${repo.url}/`, name: 'web', version: '1.0.0' }, { cacheDir });
    const before = repo.requests.length;
    // fetchChart keeps no state in memory: a second call is what an engine restart sees.
    const again = await fetchChart({ repo: repo.url, name: 'web', version: '1.0.0' }, { cacheDir });
    const pinned = await fetchChart({ repo: repo.url, name: 'web', version: '1.0.0', digest: first.digest }, { cacheDir });
    const offline = await fetchChart({ repo: repo.url, name: 'web', version: '1.0.0' }, { cacheDir, offline: true });
    expect([again, pinned, offline]).toEqual([first, first, first]);
    expect(repo.requests.length).toBe(before);
  });

  it('downloads again when the cached package no longer matches its digest', async () => {
    const cacheDir = await tempDir('cache');
    const first = await fetchChart({ repo: repo.url, name: 'web', version: '1.0.0' }, { cacheDir });
    const [file] = await readdir(path.join(cacheDir, 'packages'));
    await writeFile(path.join(cacheDir, 'packages', file), 'corrupted');
    const before = repo.requests.length;
    expect(await fetchChart({ repo: repo.url, name: 'web', version: '1.0.0' }, { cacheDir })).toEqual(first);
    expect(repo.requests.slice(before)).toEqual(['/index.yaml', '/web-1.0.0.tgz']);
    expect(await sha256Of(path.join(cacheDir, 'packages', file))).toBe(first.digest);
  });

  it('fetches the same chart concurrently into one cache entry (two reconcile loops at once)', async () => {
    const cacheDir = await tempDir('cache');
    const results = await Promise.all(
      Array.from({ length: 4 }, () => fetchChart({ repo: repo.url, name: 'web', version: '1.1.0' }, { cacheDir })),
    );
    expect(new Set(results.map((r) => r.dir)).size).toBe(1);
    expect(await readdir(path.join(cacheDir, 'charts'))).toHaveLength(1);
    expect(await readdir(path.join(cacheDir, 'tmp'))).toEqual([]);
    expect(await chartYaml(results[0].dir)).toMatchObject({ name: 'web', version: '1.1.0' });
  });

  it('refuses a package whose digest differs from the pin, and does not use the cached copy instead', async () => {
    const cacheDir = await tempDir('cache');
    const cached = await fetchChart({ repo: repo.url, name: 'web', version: '1.1.0' }, { cacheDir });
    const wrong = `sha256:${'0'.repeat(64)}`;
    const before = repo.requests.length;
    const err = await rejection(fetchChart({ repo: repo.url, name: 'web', version: '1.1.0', digest: wrong }, { cacheDir }));
    expect(err).toBeInstanceOf(TerminalError);
    expect(err.message).toBe(
      `chart ${repo.url}/web version 1.1.0: wrong digest: expected ${wrong}, got ${cached.digest}; refused. ` +
        'If the chart was republished on purpose, update the digest in spec.helm.chart',
    );
    expect(repo.requests.length).toBeGreaterThan(before);
    // Offline, a pin the cache cannot satisfy is "not cached", never the other copy.
    expect(await rejection(fetchChart({ repo: repo.url, name: 'web', version: '1.1.0', digest: wrong }, { cacheDir, offline: true }))).toBeInstanceOf(ChartNotCachedError);
  });

  it('names the available versions when the version is not in the repository, and the charts when the name is not', async () => {
    const cacheDir = await tempDir('cache');
    const err = await rejection(fetchChart({ repo: repo.url, name: 'web', version: '9.9.9' }, { cacheDir }));
    expect(err).toBeInstanceOf(TerminalError);
    expect(err.message).toBe(`chart web version 9.9.9 not found in ${repo.url}; available: 1.1.0, 1.0.0`);
    const noName = await rejection(fetchChart({ repo: repo.url, name: 'wbe', version: '1.0.0' }, { cacheDir }));
    expect(noName).toBeInstanceOf(TerminalError);
    expect(noName.message).toBe(`chart wbe not found in ${repo.url}; charts there: api, web`);
  });

  it('refuses a package that does not match the digest in index.yaml', async () => {
    const dir = await tempDir('charts-tampered');
    await cp(repoDir, dir, { recursive: true });
    // Replaced after indexing: the index still lists the sha256 of the 1.1.0 package.
    await cp(path.join(dir, 'web-1.0.0.tgz'), path.join(dir, 'web-1.1.0.tgz'));
    const tampered = await serveChartRepo(dir, helm);
    await cp(path.join(repoDir, 'index.yaml'), path.join(dir, 'index.yaml'));
    try {
      const err = await rejection(fetchChart({ repo: tampered.url, name: 'web', version: '1.1.0' }, { cacheDir: await tempDir('cache') }));
      expect(err).toBeInstanceOf(TerminalError);
      expect(err.message).toMatch(/^chart web version 1\.1\.0 from http:\/\/127\.0\.0\.1:\d+: wrong digest: index\.yaml says sha256:[0-9a-f]{64}, the package is sha256:[0-9a-f]{64}; refused$/);
    } finally {
      await tampered.close();
    }
  });

  it('an unreachable repository is a transient error (retried), a fresh cache offline says what is missing', async () => {
    const down = await serveChartRepo(repoDir, helm);
    await down.close();
    const cacheDir = await tempDir('cache');
    const err = await rejection(fetchChart({ repo: down.url, name: 'web', version: '1.0.0' }, { cacheDir }));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toMatch(/ECONNREFUSED/);
    const offline = await rejection(fetchChart({ repo: repo.url, name: 'web', version: '1.0.0' }, { cacheDir, offline: true }));
    expect(offline).toBeInstanceOf(ChartNotCachedError);
    expect(offline.message).toBe(`not in the chart cache (offline): ${repo.url}/web 1.0.0; a sync with network access fetches it`);
  });
});

toolSuite('fetchChart from an OCI registry', ['helm', 'registry'], () => {
  let helm: IsolatedHelm;
  let registry: Registry;
  let tgz: string;
  let pushed: string;

  beforeAll(async () => {
    helm = await isolatedHelm();
    registry = await startRegistry();
    const src = await tempDir('oci-src');
    const pkgs = await tempDir('oci-pkgs');
    await helm.push(await helm.package(await writeChart(path.join(src, 'a'), { name: 'web', version: '1.0.0', templates: { 'cm.yaml': configMap('web') } }), pkgs), `${registry.oci}/charts`);
    tgz = await helm.package(await writeChart(path.join(src, 'b'), { name: 'web', version: '1.1.0+build.7', templates: { 'cm.yaml': configMap('web') } }), pkgs);
    pushed = await helm.push(tgz, `${registry.oci}/charts`);
  });
  afterAll(async () => {
    await registry?.stop();
    await helm?.cleanup();
  });

  it('fetches a chart by version and reports the manifest digest helm push printed', async () => {
    const cacheDir = await tempDir('cache');
    const chart = await fetchChart({ repo: `${registry.oci}/charts/web`, version: '1.1.0+build.7' }, { cacheDir });
    expect(chart.digest).toBe(pushed);
    expect(chart.packageDigest).toBe(await sha256Of(tgz));
    expect(await chartYaml(chart.dir)).toMatchObject({ name: 'web', version: '1.1.0+build.7' });
    expect(await helm.run(['template', 'rel', chart.dir])).toContain('chart: web-1.1.0+build.7');
    const pinned = await fetchChart({ repo: `${registry.oci}/charts/web`, version: '1.1.0+build.7', digest: pushed }, { cacheDir });
    expect(pinned).toEqual(chart);
  });

  it('refuses a wrong pin, names the versions there, and serves cached versions when the registry is gone', async () => {
    const cacheDir = await tempDir('cache');
    const wrong = `sha256:${'a'.repeat(64)}`;
    const err = await rejection(fetchChart({ repo: `${registry.oci}/charts/web`, version: '1.1.0+build.7', digest: wrong }, { cacheDir }));
    expect(err).toBeInstanceOf(TerminalError);
    expect(err.message).toContain(`wrong digest: expected ${wrong}, got ${pushed}; refused`);
    const missing = await rejection(fetchChart({ repo: `${registry.oci}/charts/web`, version: '2.0.0' }, { cacheDir }));
    expect(missing).toBeInstanceOf(TerminalError);
    expect(missing.message).toBe(`chart ${registry.oci}/charts/web version 2.0.0 not found in ${registry.host}/charts/web; available: 1.1.0+build.7, 1.0.0`);

    // A registry of its own, stopped after one fetch.
    const own = await startRegistry();
    try {
      const digest = await helm.push(tgz, `${own.oci}/charts`);
      const first = await fetchChart({ repo: `${own.oci}/charts/web`, version: '1.1.0+build.7', digest }, { cacheDir });
      await own.stop();
      expect(await fetchChart({ repo: `${own.oci}/charts/web`, version: '1.1.0+build.7', digest }, { cacheDir })).toEqual(first);
      const down = await rejection(fetchChart({ repo: `${own.oci}/charts/web`, version: '1.0.0' }, { cacheDir }));
      expect(down).toBeInstanceOf(TransientError);
    } finally {
      await own.stop();
    }
  });

  it('answers a Bearer challenge with an anonymous token, and does not send it where blobs are redirected', async () => {
    // In front of the real registry, as ghcr.io does it: /v2/ wants a token that /token hands out to anyone, and
    // blobs are redirected to another host (the storage), which must not see the token.
    const seen: { path: string; auth?: string; at: 'front' | 'storage' }[] = [];
    const forward = async (req: http.IncomingMessage, res: http.ServerResponse) => {
      const upstream = await fetch(`http://${registry.host}${req.url}`, { headers: { accept: req.headers.accept ?? '*/*' } });
      res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/octet-stream' });
      res.end(Buffer.from(await upstream.arrayBuffer()));
    };
    const storage = await listen((req, res) => {
      seen.push({ path: req.url ?? '', auth: req.headers.authorization, at: 'storage' });
      void forward(req, res);
    });
    const front = await listen((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      seen.push({ path: url.pathname + url.search, auth: req.headers.authorization, at: 'front' });
      if (url.pathname === '/token') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: `anon-${url.searchParams.get('scope')}` }));
      } else if (req.headers.authorization !== 'Bearer anon-repository:charts/web:pull') {
        res.writeHead(401, { 'www-authenticate': `Bearer realm="http://127.0.0.1:${front.port}/token",service="test",scope="repository:charts/web:pull"` }).end();
      } else if (url.pathname.includes('/blobs/')) {
        res.writeHead(307, { location: `http://127.0.0.1:${storage.port}${req.url}` }).end();
      } else {
        void forward(req, res);
      }
    });
    const chart = await fetchChart({ repo: `oci://127.0.0.1:${front.port}/charts/web`, version: '1.1.0+build.7' }, { cacheDir: await tempDir('cache') });
    expect(chart.digest).toBe(pushed);
    expect(seen.map((s) => [s.at, s.path.replace(/sha256:[0-9a-f]+/, 'sha256:…'), s.auth ?? null])).toEqual([
      ['front', '/v2/charts/web/manifests/1.1.0_build.7', null],
      ['front', '/token?service=test&scope=repository%3Acharts%2Fweb%3Apull', null],
      ['front', '/v2/charts/web/manifests/1.1.0_build.7', 'Bearer anon-repository:charts/web:pull'],
      ['front', '/v2/charts/web/blobs/sha256:…', 'Bearer anon-repository:charts/web:pull'],
      ['storage', '/v2/charts/web/blobs/sha256:…', null],
    ]);
  });

  it('resolves a dependency from the registry pinned in Chart.lock', async () => {
    const root = await tempDir('ops-oci');
    const parent = await writeChart(root, {
      name: 'shop',
      version: '1.0.0',
      templates: { 'cm.yaml': configMap('shop-config') },
      dependencies: [{ name: 'web', version: '>=1.0.0 <1.1.0', repository: `${registry.oci}/charts` }],
    });
    await helm.run(['dependency', 'update', '--plain-http', parent]);
    await rm(path.join(parent, 'charts'), { recursive: true, force: true });
    const resolved = await resolveDependencies(parent, { cacheDir: await tempDir('cache'), repoRoot: root });
    expect(resolved.dependencies).toEqual([{ name: 'web', version: '1.0.0', repository: `${registry.oci}/charts`, from: 'remote', digest: expect.stringMatching(/^sha256:/) }]);
    const out = await helm.run(['template', 'rel', resolved.dir]);
    expect(out).toContain('name: shop-config');
    expect(out).toContain('chart: web-1.0.0');
  });
});

toolSuite('resolveDependencies', ['helm'], () => {
  let helm: IsolatedHelm;
  let repo: ServedRepo;
  let repoRoot: string;
  let appDir: string;

  beforeAll(async () => {
    helm = await isolatedHelm();
    const src = await tempDir('dep-src');
    const repoDir = await tempDir('dep-repo');
    await helm.package(await writeChart(path.join(src, 'a'), { name: 'sub', version: '0.1.0', templates: { 'cm.yaml': configMap('sub-config') } }), repoDir);
    await helm.package(await writeChart(path.join(src, 'b'), { name: 'sub', version: '0.2.0', templates: { 'cm.yaml': configMap('sub-config') } }), repoDir);
    repo = await serveChartRepo(repoDir, helm);

    // The ops repository: a chart whose Chart.lock pins sub 0.1.0, written by the real `helm dependency update`;
    // charts/ is not committed (as .gitignore usually says).
    repoRoot = await tempDir('ops');
    appDir = await writeChart(path.join(repoRoot, 'charts'), {
      name: 'app',
      version: '1.0.0',
      templates: { 'cm.yaml': configMap('app-config') },
      dependencies: [{ name: 'sub', version: '~0.1.0', repository: repo.url }],
    });
    await helm.run(['repo', 'add', 'test-sub', repo.url]);
    await helm.run(['dependency', 'update', appDir]);
    await rm(path.join(appDir, 'charts'), { recursive: true, force: true });
  });
  afterAll(async () => {
    await repo?.close();
    await helm?.cleanup();
  });

  it('places the Chart.lock versions in a copy of the chart, and helm renders the sub-chart', async () => {
    const cacheDir = await tempDir('cache');
    const lock = parseYaml(await readFile(path.join(appDir, 'Chart.lock'), 'utf8'));
    expect(lock.dependencies).toEqual([{ name: 'sub', repository: repo.url, version: '0.1.0' }]);

    const resolved = await resolveDependencies(appDir, { cacheDir, repoRoot });
    expect(resolved.dir.startsWith(cacheDir)).toBe(true);
    expect(resolved.dependencies).toEqual([{ name: 'sub', version: '0.1.0', repository: repo.url, from: 'remote', digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) }]);
    expect(await readdir(appDir)).not.toContain('charts');

    const out = await helm.run(['template', 'rel', resolved.dir]);
    const names = out.split(/^---$/m).map((d) => parseYaml(d)?.metadata?.name).filter(Boolean);
    expect(names.sort()).toEqual(['app-config', 'sub-config']);
    expect(out).toContain('chart: sub-0.1.0');

    const before = repo.requests.length;
    expect(await resolveDependencies(appDir, { cacheDir, repoRoot })).toEqual(resolved);
    expect(await resolveDependencies(appDir, { cacheDir, repoRoot, offline: true })).toEqual(resolved);
    expect(repo.requests.length).toBe(before);
  });

  it('offline with an empty cache names each missing dependency', async () => {
    const err = await rejection(resolveDependencies(appDir, { cacheDir: await tempDir('cache'), repoRoot, offline: true }));
    expect(err).toBeInstanceOf(ChartNotCachedError);
    expect((err as ChartNotCachedError).missing).toEqual([`${repo.url}/sub 0.1.0`]);
  });

  it('a Chart.lock out of step with Chart.yaml, or none, is an error at the line in Chart.yaml', async () => {
    const root = await tempDir('ops-bad');
    const bad = path.join(root, 'app');
    await cp(appDir, bad, { recursive: true });
    const chartFile = path.join(bad, 'Chart.yaml');
    await writeFile(chartFile, (await readFile(chartFile, 'utf8')).replace('~0.1.0', '^0.2.0'));
    const err = await rejection(resolveDependencies(bad, { cacheDir: await tempDir('cache'), repoRoot: root }));
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.message).toBe('app/Chart.yaml:7:14: Chart.lock pins sub at 0.1.0, which is not ^0.2.0: run `helm dependency update` and commit Chart.lock');

    await rm(path.join(bad, 'Chart.lock'));
    const noLock = await rejection(resolveDependencies(bad, { cacheDir: await tempDir('cache'), repoRoot: root }));
    expect(noLock).toBeInstanceOf(ValidationError);
    expect(noLock.message).toBe('app/Chart.yaml:5:1: sub not in charts/ and there is no Chart.lock to pin its version: run `helm dependency update` and commit Chart.lock');
  });

  it('takes file:// dependencies from inside the repository, and refuses one outside it', async () => {
    const root = await tempDir('ops-file');
    await writeChart(path.join(root, 'charts'), { name: 'lib', version: '0.0.1', templates: { 'cm.yaml': configMap('lib-config') } });
    const parent = await writeChart(path.join(root, 'charts'), {
      name: 'parent',
      version: '1.0.0',
      dependencies: [{ name: 'lib', version: '0.0.1', repository: 'file://../lib' }],
    });
    await helm.run(['dependency', 'update', parent]);
    await rm(path.join(parent, 'charts'), { recursive: true, force: true });
    const resolved = await resolveDependencies(parent, { cacheDir: await tempDir('cache'), repoRoot: root });
    expect(resolved.dependencies).toEqual([{ name: 'lib', version: '0.0.1', repository: 'file://../lib', from: 'file' }]);
    expect(await helm.run(['template', 'rel', resolved.dir])).toContain('name: lib-config');

    const err = await rejection(resolveDependencies(parent, { cacheDir: await tempDir('cache'), repoRoot: path.join(root, 'charts', 'parent') }));
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.message).toBe('Chart.yaml:8:17: dependency lib: file://../lib leaves the repository');
  });
});
