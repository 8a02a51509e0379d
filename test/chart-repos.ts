/**
 * Real chart sources for tests: charts packaged by the real helm, an HTTP chart repository (`helm repo index` output
 * served from a directory on 127.0.0.1) and an OCI registry (distribution, `$KEELSON_REGISTRY_BIN`) that `helm push`
 * writes to. The tools come from `scripts/tools.sh`:
 *
 *   eval "$(scripts/tools.sh env)" && npx vitest run src/targets/kubernetes/chart-source.int.test.ts
 *
 *   const helm = await isolatedHelm();                                      // helm with its own config/cache/data
 *   const chart = await writeChart(dir, { name: 'web', version: '1.0.0', templates: { 'cm.yaml': '…' } });
 *   const repo = await serveChartRepo(repoDir, helm);                      // after helm.package(chart, repoDir)
 *   const registry = await startRegistry();  await helm.push(tgz, `${registry.oci}/charts`);
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'vitest';

type Tool = 'helm' | 'registry';
const TOOL_ENV: Record<Tool, string> = { helm: 'KEELSON_HELM_BIN', registry: 'KEELSON_REGISTRY_BIN' };

export function toolPath(tool: Tool): string | undefined {
  const p = process.env[TOOL_ENV[tool]];
  return p && existsSync(p) ? p : undefined;
}

export function toolsUnavailable(tools: readonly Tool[]): string | undefined {
  const missing = tools.filter((t) => !toolPath(t));
  if (missing.length === 0) return undefined;
  return `${missing.map((t) => TOOL_ENV[t]).join(', ')} not set: run \`scripts/tools.sh build && eval "$(scripts/tools.sh env)"\``;
}

/** A suite that needs real tools: skipped with the reason when they are missing, except in CI, where it fails. */
export function toolSuite(name: string, tools: readonly Tool[], body: () => void): void {
  const why = toolsUnavailable(tools);
  const suite = why && !process.env.CI ? describe.skip : describe;
  suite(`${name}${why ? ` (${why})` : ''}`, () => {
    if (why) {
      it('can run here', () => {
        throw new Error(`this suite must run in CI: ${why}`);
      });
      return;
    }
    body();
  });
}

export interface IsolatedHelm {
  /** HELM_CONFIG_HOME, HELM_CACHE_HOME and HELM_DATA_HOME live under it. */
  home: string;
  run(args: string[], opts?: { cwd?: string }): Promise<string>;
  /** `helm package`; returns the .tgz path. */
  package(chartDir: string, destDir: string): Promise<string>;
  /** `helm push --plain-http` to `oci://127.0.0.1:PORT/path`; returns the manifest digest helm prints. */
  push(tgz: string, ociBase: string): Promise<string>;
  cleanup(): Promise<void>;
}

/** The helm CLI with its own empty config, cache and data homes and no KEELSON_* / SOPS_AGE_* variables. */
export async function isolatedHelm(): Promise<IsolatedHelm> {
  const bin = toolPath('helm');
  if (!bin) throw new Error(toolsUnavailable(['helm']));
  const home = await mkdtemp(path.join(tmpdir(), 'keelson-helm-'));
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KEELSON_') && !k.startsWith('SOPS_AGE_')));
  Object.assign(env, {
    HELM_CONFIG_HOME: path.join(home, 'config'),
    HELM_CACHE_HOME: path.join(home, 'cache'),
    HELM_DATA_HOME: path.join(home, 'data'),
  });
  const run = (args: string[], opts: { cwd?: string } = {}) =>
    new Promise<string>((resolve, reject) => {
      execFile(bin, args, { cwd: opts.cwd, env, timeout: 120_000, maxBuffer: 64 * 1024 ** 2 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`helm ${args.join(' ')} failed: ${stderr || err.message}`));
        else resolve(stdout + stderr);
      });
    });
  return {
    home,
    run,
    async package(chartDir, destDir) {
      await mkdir(destDir, { recursive: true });
      const out = await run(['package', chartDir, '--destination', destDir]);
      const m = /saved it to: (.+\.tgz)/.exec(out);
      if (!m) throw new Error(`helm package printed no path: ${out}`);
      return m[1].trim();
    },
    async push(tgz, ociBase) {
      const out = await run(['push', tgz, ociBase, '--plain-http']);
      const m = /Digest: (sha256:[0-9a-f]{64})/.exec(out);
      if (!m) throw new Error(`helm push printed no digest: ${out}`);
      return m[1];
    },
    cleanup: () => rm(home, { recursive: true, force: true }),
  };
}

export interface ChartSpec {
  name: string;
  version: string;
  /** Files under templates/, by name. */
  templates?: Record<string, string>;
  values?: string;
  /** Chart.yaml `dependencies`. */
  dependencies?: { name: string; version: string; repository: string }[];
}

/** Writes a chart directory `<dir>/<name>`; returns its path. */
export async function writeChart(dir: string, spec: ChartSpec): Promise<string> {
  const chartDir = path.join(dir, spec.name);
  await mkdir(path.join(chartDir, 'templates'), { recursive: true });
  const deps = spec.dependencies?.length
    ? `dependencies:\n${spec.dependencies.map((d) => `  - name: ${d.name}\n    version: "${d.version}"\n    repository: ${d.repository}\n`).join('')}`
    : '';
  await writeFile(path.join(chartDir, 'Chart.yaml'), `apiVersion: v2\nname: ${spec.name}\nversion: ${spec.version}\ntype: application\n${deps}`);
  await writeFile(path.join(chartDir, 'values.yaml'), spec.values ?? '{}\n');
  for (const [file, text] of Object.entries(spec.templates ?? {})) await writeFile(path.join(chartDir, 'templates', file), text);
  return chartDir;
}

export interface ServedRepo {
  /** `http://127.0.0.1:PORT` (the repository is at the root). */
  url: string;
  /** Every request path, in order. */
  requests: string[];
  close(): Promise<void>;
}

/**
 * Runs the real `helm repo index` in `dir` (packages there get relative URLs) and serves `dir` read-only over HTTP
 * on 127.0.0.1. Call `helm.run(['repo', 'index', dir])` again after adding packages.
 */
export async function serveChartRepo(dir: string, helm: IsolatedHelm): Promise<ServedRepo> {
  await helm.run(['repo', 'index', dir]);
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    requests.push(url);
    const rel = decodeURIComponent(url.split('?')[0]).replace(/^\/+/, '');
    const file = path.resolve(dir, rel);
    if (req.method !== 'GET' || !file.startsWith(path.resolve(dir) + path.sep)) {
      res.writeHead(404).end();
      return;
    }
    stat(file)
      .then(async (st) => {
        if (!st.isFile()) throw new Error('not a file');
        const body = await readFile(file);
        res.writeHead(200, { 'content-type': file.endsWith('.tgz') ? 'application/gzip' : 'text/yaml', 'content-length': body.length }).end(body);
      })
      .catch(() => res.writeHead(404).end('not found'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface Registry {
  /** `127.0.0.1:PORT` */
  host: string;
  /** `oci://127.0.0.1:PORT` */
  oci: string;
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (free when asked; the caller binds it right away). */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** The distribution registry (v3) on 127.0.0.1 with filesystem storage in a temp dir; waits until it answers /v2/. */
export async function startRegistry(): Promise<Registry> {
  const bin = toolPath('registry');
  if (!bin) throw new Error(toolsUnavailable(['registry']));
  const dir = await mkdtemp(path.join(tmpdir(), 'keelson-registry-'));
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const config = path.join(dir, 'config.yml');
    await writeFile(
      config,
      `version: 0.1
log: { level: warn, accesslog: { disabled: true } }
storage:
  filesystem: { rootdirectory: ${JSON.stringify(path.join(dir, 'data'))} }
  maintenance: { uploadpurging: { enabled: false } }
http:
  addr: 127.0.0.1:${port}
  secret: keelson-test
`,
    );
    const env = { ...process.env, OTEL_TRACES_EXPORTER: 'none' };
    const child = spawn(bin, ['serve', config], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const ready = await waitForRegistry(port, child, exited);
    if (ready) {
      return {
        host: `127.0.0.1:${port}`,
        oci: `oci://127.0.0.1:${port}`,
        stop: async () => {
          await stopChild(child, exited);
          await rm(dir, { recursive: true, force: true });
        },
      };
    }
    await stopChild(child, exited);
    // The port may have been taken between freePort() and the registry binding it: try another, a few times.
    if (attempt >= 2) {
      await rm(dir, { recursive: true, force: true });
      throw new Error(`the registry did not start: ${stderr}`);
    }
  }
}

async function waitForRegistry(port: number, child: ChildProcess, exited: Promise<void>): Promise<boolean> {
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && !gone) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/v2/`, { signal: AbortSignal.timeout(2000) });
      await res.body?.cancel();
      if (res.status === 200) return child.exitCode === null;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

async function stopChild(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}
