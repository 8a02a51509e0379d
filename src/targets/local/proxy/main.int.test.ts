/** The proxy as its own process, the way the engine runs it: compiled JS started with `node`. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, onTestFinished, test } from 'vitest';
import { ProxyClient } from './client.js';
import { parseProxyArgs } from './main.js';
import { freePort, request, startBackend, tempSocketPath, waitFor } from './testing.js';

const root = fileURLToPath(new URL('../../../../', import.meta.url));
let outDir = '';
let entry = '';

beforeAll(async () => {
  // Inside the project so the compiled code resolves its dependencies from node_modules.
  const cache = path.join(root, 'node_modules', '.cache');
  await fs.mkdir(cache, { recursive: true });
  outDir = await fs.mkdtemp(path.join(cache, 'keelson-proxy-test-'));
  const tsc = spawn(
    process.execPath,
    [
      path.join(root, 'node_modules/typescript/bin/tsc'),
      ...['--outDir', outDir, '--rootDir', 'src', '--module', 'nodenext', '--moduleResolution', 'nodenext'],
      ...['--target', 'es2022', '--strict', '--skipLibCheck', '--esModuleInterop', '--types', 'node'],
      'src/targets/local/proxy/main.ts',
    ],
    { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  tsc.stdout.on('data', (d) => (output += d));
  tsc.stderr.on('data', (d) => (output += d));
  const [code] = await once(tsc, 'exit');
  if (code !== 0) throw new Error(`compiling the proxy failed:\n${output}`);
  entry = path.join(outDir, 'entry.mjs');
  await fs.writeFile(
    entry,
    [
      "import { runProxyMain } from './targets/local/proxy/main.js';",
      'runProxyMain(process.argv.slice(2)).catch((err) => {',
      '  process.stderr.write(`${err.message}\\n`);',
      '  process.exitCode = err.code ?? 1;',
      '});',
    ].join('\n'),
  );
});

afterAll(async () => {
  if (outDir) await fs.rm(outDir, { recursive: true, force: true });
});

interface ProxyProcess {
  child: ChildProcess;
  client: ProxyClient;
  lines: string[];
  exited: Promise<number | null>;
}

async function spawnProxy(): Promise<ProxyProcess> {
  const { dir, socketPath } = await tempSocketPath();
  onTestFinished(() => fs.rm(dir, { recursive: true, force: true }));
  const child = spawn(process.execPath, [entry, '--socket', socketPath, '--close-grace-ms', '10000'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  const lines: string[] = [];
  let rest = '';
  child.stdout!.on('data', (d: Buffer) => {
    const parts = (rest + d.toString()).split('\n');
    rest = parts.pop()!;
    lines.push(...parts);
  });
  const client = new ProxyClient(socketPath);
  await waitFor(() => client.health().then(() => true, () => false), 15_000, 'proxy control socket');
  return { child, client, lines, exited };
}

/** A replica in its own process, answering its name. */
async function spawnReplica(name: string): Promise<{ child: ChildProcess; url: string }> {
  const script = `
    const http = require('http');
    const s = http.createServer((req, res) => res.end(${JSON.stringify(name)}));
    s.listen(0, '127.0.0.1', () => console.log(s.address().port));`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  onTestFinished(() => {
    child.kill('SIGKILL');
  });
  const [data] = await once(child.stdout!, 'data');
  return { child, url: `http://127.0.0.1:${Number(String(data).trim())}` };
}

describe('keelson proxy process', () => {
  test('a replica killed with SIGKILL is invisible to clients', async () => {
    const proxy = await spawnProxy();
    const [a, b] = await Promise.all([spawnReplica('a'), spawnReplica('b')]);
    const port = await freePort();
    const status = await proxy.client.putRoutes({
      routes: [{ key: 'prod/web', port, backends: [{ id: 'a', url: a.url, version: '1' }, { id: 'b', url: b.url, version: '1' }] }],
    });
    expect(status.routes[0].listening).toBe(true);

    const agent = new http.Agent({ keepAlive: true });
    onTestFinished(() => agent.destroy());
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) seen.add((await request(port, { agent })).body);
    expect(seen).toEqual(new Set(['a', 'b']));

    a.child.kill('SIGKILL');
    await once(a.child, 'exit');
    const after: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await request(port, { agent });
      expect(r.status).toBe(200);
      after.push(r.body);
    }
    expect(new Set(after)).toEqual(new Set(['b']));
  });

  test('on SIGTERM lets in-flight requests finish, then exits 0 having logged only JSON', async () => {
    const proxy = await spawnProxy();
    const backend = await startBackend('a');
    onTestFinished(() => backend.close());
    const port = await freePort();
    await proxy.client.putRoutes({ routes: [{ key: 'prod/web', port, backends: [{ id: 'a', url: backend.url, version: '1' }] }] });

    backend.hold = true;
    const pending = request(port);
    await backend.whenWaiting(1);
    proxy.child.kill('SIGTERM');
    await waitFor(() => proxy.lines.some((l) => l.includes('"proxy stopping"')), 10_000, 'proxy stopping log');
    await expect(request(port, { agent: new http.Agent({ keepAlive: false }) })).rejects.toMatchObject({ code: 'ECONNREFUSED' });

    backend.release();
    expect(await pending).toMatchObject({ status: 200, body: 'a' });
    expect(await proxy.exited).toBe(0);
    expect(proxy.lines.length).toBeGreaterThan(0);
    for (const line of proxy.lines) expect(() => JSON.parse(line)).not.toThrow();
    expect(proxy.lines.some((l) => l.includes('"proxy stopped"'))).toBe(true);
  });
});

describe('parseProxyArgs', () => {
  test('requires --socket and applies defaults', () => {
    expect(parseProxyArgs(['--socket', '/s'])).toEqual({
      socketPath: '/s',
      listenHost: '127.0.0.1',
      upstreamTimeoutMs: 60_000,
      closeGraceMs: 30_000,
    });
    expect(() => parseProxyArgs([])).toThrow(/--socket is required/);
    expect(() => parseProxyArgs(['--socket', '/s', '--upstream-timeout-ms', 'soon'])).toThrow(/whole number/);
    expect(() => parseProxyArgs(['--nope'])).toThrow(/usage: keelson proxy/);
  });
});
