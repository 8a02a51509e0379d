import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

export const root = resolve(import.meta.dirname, '..');
export const bin = join(root, 'bin', 'keelson');

/** A temp dir removed after the test file (unless KEELSON_KEEP_TMP is set). */
export function tempDir(prefix = 'keelson-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => !process.env.KEELSON_KEEP_TMP && rmSync(dir, { recursive: true, force: true }) };
}

/** Writes `{ 'path': 'contents' }` below `dir`. */
export function writeTree(dir: string, files: Record<string, string>): void {
  for (const [p, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, p)), { recursive: true });
    writeFileSync(join(dir, p), content);
  }
}

/** A real git repository: branch main, no signing, no background maintenance. */
export function gitInit(dir: string): void {
  git(dir, 'init', '-q', '-b', 'main');
  git(dir, 'config', 'gc.auto', '0');
  git(dir, 'config', 'maintenance.auto', 'false');
}

export function git(dir: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'user.name=Test', '-c', 'user.email=test@keelson.dev', '-c', 'commit.gpgsign=false', ...args], {
    cwd: dir,
    encoding: 'utf8',
  }).trim();
}

/** Commits everything in the work tree; returns the new revision. */
export function commitAll(dir: string, message: string): string {
  git(dir, 'add', '-A');
  git(dir, 'commit', '-q', '-m', message);
  return git(dir, 'rev-parse', 'HEAD');
}

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
  });
}

/** Polls `probe` until it returns a truthy value; fails with the last value seen after `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * App `web` of the rollout tests: `replicas` processes of `node server.js` from `releases/<version>` on `port`, ready
 * on GET /healthz; `rollout` is the YAML of its `rollout:` block (indented by four spaces), e.g. a strategy.
 */
export const webApp = (port: number, { replicas, rollout }: { replicas: number; rollout: string }): string => `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: web }
spec:
  version: "1.0.0"
  artifact: { path: "../releases/{version}" }
  run: { command: ["node", "server.js"] }
  replicas: ${replicas}
  port: ${port}
  readiness: { http: { path: /healthz }, periodSeconds: 1 }
  terminationGracePeriodSeconds: 5
  rollout:
${rollout}
`;

/** Environment `dev` that runs app `web` at `version` (the rollout tests' environment file). */
export const webEnvironment = (version: string): string => `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata: { name: dev }
spec:
  apps:
    web: { version: "${version}" }
`;

/**
 * appServer's 2.0.0 that is ready only in processes the gate file lets through: its pids one per line, or every
 * process once it says "all". A test holds a rollout at a step by deciding which replicas get ready.
 */
export function gatedServer(gate: string): string {
  return appServer('2.0.0').replace(
    "if (req.url === '/healthz') {",
    `if (req.url === '/healthz') { let g = ''; try { g = require('node:fs').readFileSync(${JSON.stringify(gate)}, 'utf8'); } catch {}
    if (g.trim() !== 'all' && !g.split('\\n').includes(String(process.pid))) { res.statusCode = 503; return res.end('gated'); }`,
  );
}

/** A tiny dependency-free HTTP app used as a release: answers `GET /` with its version. */
export function appServer(version: string, opts: { crash?: string; notReady?: boolean } = {}): string {
  if (opts.crash) return `console.error(${JSON.stringify(opts.crash)}); process.exit(1);\n`;
  return `
const http = require('node:http');
const version = ${JSON.stringify(version)};
const server = http.createServer((req, res) => {
  if (req.url === '/healthz') { res.statusCode = ${opts.notReady ? 503 : 200}; return res.end('ok'); }
  res.setHeader('content-type', 'text/plain');
  res.end('version ' + version + ' ' + (process.env.GREETING || '') + '\\n');
});
server.keepAliveTimeout = 2000;
server.listen(Number(process.env.PORT), '127.0.0.1', () => console.log('listening on ' + process.env.PORT + ' version ' + version));
process.on('SIGTERM', () => { server.close(() => process.exit(0)); server.closeIdleConnections(); });
`;
}

/**
 * `keelson up` for the crash tests, started again and again on one ops repository and state dir: on loopback at
 * `api()` with an operator `token`, polling every second. `up(killAt)` starts it, SIGKILLing itself at that point
 * (src/core/kill-points.ts), and resolves with its signal or exit code once its output is in
 * `keelson-N.log` (in KEELSON_TEST_LOG_DIR when set, to keep the logs); `stop()` ends it with SIGTERM.
 */
export function crashTestEngine(o: { ops: string; state: string; api: () => string; token: string; logDir: string; env?: Record<string, string> }) {
  let child: ChildProcess | undefined;
  let exited: Promise<NodeJS.Signals | number | null> = Promise.resolve(null);
  let starts = 0;
  return {
    up(killAt?: string): Promise<NodeJS.Signals | number | null> {
      const { KEELSON_TEST_KILL_AT: _drop, ...env } = process.env;
      const c = spawn(process.execPath, [bin, 'up', '--repo', o.ops, '--state-dir', o.state, '--listen', o.api().replace(/^http:\/\//, ''), '--poll', '1s'], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...env, KEELSON_LOG_LEVEL: 'debug', KEELSON_TOKEN_OPERATOR: o.token, ...o.env, ...(killAt ? { KEELSON_TEST_KILL_AT: killAt } : {}) },
      });
      const chunks: Buffer[] = [];
      c.stdout!.on('data', (x) => chunks.push(x));
      c.stderr!.on('data', (x) => chunks.push(x));
      const log = join(process.env.KEELSON_TEST_LOG_DIR ?? o.logDir, `keelson-${starts++}.log`);
      child = c;
      exited = new Promise((res) =>
        c.on('exit', (code, signal) => {
          writeFileSync(log, Buffer.concat(chunks));
          res(signal ?? code);
        }),
      );
      return exited;
    },
    async stop(): Promise<void> {
      child?.kill('SIGTERM');
      await exited;
      child = undefined;
    },
    kill(): void {
      child?.kill('SIGKILL');
    },
  };
}

/** `keelson up` as a child process. */
export function startKeelson(args: string[], logFile: string): ChildProcess {
  const child = spawn(process.execPath, [bin, 'up', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KEELSON_LOG_LEVEL: 'debug' } });
  const chunks: Buffer[] = [];
  child.stdout!.on('data', (c) => chunks.push(c));
  child.stderr!.on('data', (c) => chunks.push(c));
  child.on('exit', () => writeFileSync(logFile, Buffer.concat(chunks)));
  return child;
}

export function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((res) => {
    child.once('exit', () => res());
    child.kill('SIGTERM');
  });
}

export async function getJson<T = any>(url: string): Promise<T> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** Runs `keelson ARGS`; `opts.env` replaces this process's environment for it. */
export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): { code: number; stdout: string; stderr: string } {
  try {
    const stdout = execFileSync(process.execPath, [bin, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
    return { code: 0, stdout, stderr: '' };
  } catch (err: any) {
    return { code: err.status ?? 1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

/**
 * A steady request loop against a port over keep-alive connections: counts every answer and every failure.
 */
export function requestLoop(port: number, intervalMs = 5) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const bodies = new Map<string, number>();
  const failures: string[] = [];
  let total = 0;
  let running = true;
  const one = () =>
    new Promise<void>((res) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/', agent }, (r) => {
        let body = '';
        r.setEncoding('utf8');
        r.on('data', (c) => (body += c));
        r.on('end', () => {
          total++;
          if (r.statusCode !== 200) failures.push(`${r.statusCode} ${body.trim()}`);
          else bodies.set(body.trim(), (bodies.get(body.trim()) ?? 0) + 1);
          res();
        });
      });
      req.on('error', (err) => {
        total++;
        failures.push(err.message);
        res();
      });
    });
  const done = (async () => {
    while (running) {
      await one();
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  return {
    bodies,
    failures,
    get total() {
      return total;
    },
    async stop() {
      running = false;
      await done;
      agent.destroy();
    },
  };
}
