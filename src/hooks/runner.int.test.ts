import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HookStep } from '../core/delivery.js';
import { EventBus, type Stamped } from '../core/events.js';
import { createLogger } from '../log.js';
import { freePort, tempDir } from '../../test/helpers.js';
import { runPhase, type HookContext } from './runner.js';

const step = (s: Partial<HookStep> & Record<string, unknown>): HookStep => ({ timeoutSeconds: 10, retries: 0, retryDelaySeconds: 0, ...s }) as HookStep;

describe('hook runner (real processes and a real HTTP server)', () => {
  const tmp = tempDir('keelson-hookrun-');
  const bus = new EventBus();
  const events: Stamped[] = [];
  bus.subscribe((e) => events.push(e));
  const deps = { stateDir: tmp.dir, bus, log: createLogger({ level: 'silent' }) };
  let server: http.Server;
  let port: number;
  let hits = 0;
  const ctx = (extra: Partial<HookContext> = {}): HookContext => ({
    phase: 'postSync', env: 'dev', app: 'web', revision: 'a'.repeat(40), version: '1.2.0', previousVersion: '1.1.0', result: 'Succeeded', cwd: tmp.dir, vars: { GREETING: 'hi' }, port, ...extra,
  });

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      hits++;
      if (req.url?.startsWith('/flaky') && hits % 2 === 1) res.statusCode = 503;
      res.end(`${req.method} ${req.url}`);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => {
    server.close();
    tmp.cleanup();
  });

  it('runs exec steps in the given directory with the app vars and KEELSON_* variables', async () => {
    const script = "console.log([process.cwd(), process.env.GREETING, process.env.KEELSON_HOOK, process.env.KEELSON_VERSION, process.env.KEELSON_PREVIOUS_VERSION, process.env.KEELSON_RESULT, process.env.KEELSON_PORT].join(' '))";
    const r = await runPhase([step({ name: 'show', exec: { command: ['node', '-e', script] } })], ctx(), deps);
    expect(r.ok).toBe(true);
    const done = events.filter((e) => e.type === 'hook.completed').pop() as any;
    expect(done.output.trim()).toBe(`${tmp.dir} hi postSync 1.2.0 1.1.0 Succeeded ${port}`);
    expect(done).toMatchObject({ step: 'show', phase: 'postSync', ok: true, attempt: 1 });
  });

  it('kills a step at its timeout, with its children, and stops the phase there', async () => {
    const r = await runPhase(
      [step({ timeoutSeconds: 1, exec: { command: ['sh', '-c', 'echo started; sleep 30 & wait'] } }), step({ exec: { command: ['node', '-e', 'process.exit(0)'] } })],
      ctx({ phase: 'preSync' }),
      deps,
    );
    expect(r.ok).toBe(false);
    expect(r.message).toBe('preSync hook "preSync[0] exec" failed after 1 attempt: timed out after 1s; output: started');
    expect(r.steps).toHaveLength(1);
  });

  it('retries http steps and substitutes {port} and {version}', async () => {
    hits = 0;
    const r = await runPhase([step({ http: { url: 'http://127.0.0.1:{port}/flaky?v={version}', method: 'GET', expectStatus: [200], headers: {} }, retries: 2 })], ctx(), deps);
    expect(r.ok).toBe(true);
    expect(r.steps[0].attempts).toBe(2);
    expect(r.steps[0].message).toBe(`GET http://127.0.0.1:${port}/flaky?… answered 200`);
  });

  it('fails an http step on an unexpected status and on a refused connection', async () => {
    const bad = await runPhase([step({ http: { url: `http://127.0.0.1:${port}/x`, method: 'POST', expectStatus: [201, 202], headers: {} } })], ctx(), deps);
    expect(bad.message).toBe(`postSync hook "postSync[0] http" failed after 1 attempt: POST http://127.0.0.1:${port}/x answered 200 (expected 201 or 202); output: POST /x`);
    const closed = await freePort();
    const refused = await runPhase([step({ http: { url: `http://127.0.0.1:${closed}/`, method: 'GET', expectStatus: [200], headers: {} } })], ctx(), deps);
    expect(refused.message).toBe(`postSync hook "postSync[0] http" failed after 1 attempt: GET http://127.0.0.1:${closed}/ failed: ECONNREFUSED`);
  });

  it('reports a missing program clearly', async () => {
    const r = await runPhase([step({ exec: { command: ['definitely-not-a-program-xyz'] } })], ctx(), deps);
    expect(r.message).toMatch(/cannot run "definitely-not-a-program-xyz" in .*: spawn definitely-not-a-program-xyz ENOENT/);
  });
});
