import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NotificationSpec } from '../core/delivery.js';
import type { DesiredEnvironment } from '../core/model.js';
import { EventBus, type Stamped } from '../core/events.js';
import { createLogger } from '../log.js';
import { Notifier } from './notifier.js';

describe('notifications to a real HTTP receiver', () => {
  const received: { path: string; headers: http.IncomingHttpHeaders; body: any }[] = [];
  let server: http.Server;
  let base: string;
  let failNext = 0;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        if (failNext > 0) {
          failNext--;
          res.statusCode = 503;
          return res.end();
        }
        received.push({ path: req.url!, headers: req.headers, body: JSON.parse(body) });
        res.end('ok');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(() => server.close());

  const spec = (n: Partial<NotificationSpec>): NotificationSpec => ({ name: 'n', type: 'webhook', headers: {}, triggers: [], suppressRepeatsSeconds: 600, apps: [], ...n });
  const setup = (notifications: NotificationSpec[], vars: Record<string, string> = {}) => {
    const bus = new EventBus();
    const events: Stamped[] = [];
    bus.subscribe((e) => events.push(e));
    let now = Date.parse('2026-01-01T00:00:00Z');
    const env: DesiredEnvironment = {
      name: 'prod',
      target: { local: {} },
      apps: [{ name: 'web', version: '2.0.0' } as DesiredEnvironment['apps'][number], { name: 'api', version: '1.4.0' } as DesiredEnvironment['apps'][number]],
      source: { file: 'e.yaml', line: 1, col: 1 },
      notifications,
    };
    const n = new Notifier({ bus, log: createLogger({ level: 'silent' }), environment: (e) => (e === 'prod' ? env : undefined), link: (e) => `http://keelson.test/status?env=${e}`, now: () => now, vars, attempts: 2 });
    n.start();
    return { bus, n, events, advance: (ms: number) => (now += ms) };
  };

  it('posts the generic JSON body for the triggers asked for, with headers, and suppresses repeats', async () => {
    received.length = 0;
    const { bus, n, advance } = setup([spec({ name: 'hook', url: `${base}/hook`, headers: { 'x-team': 'pay' }, triggers: ['syncFailed', 'rolledBack'], suppressRepeatsSeconds: 60 })]);
    bus.publish({ type: 'sync.started', env: 'prod', revision: 'r1', changes: 1 }); // not asked for
    bus.publish({ type: 'sync.completed', env: 'prod', revision: 'r1', result: 'Failed', durationMs: 5, message: 'web: not ready' });
    bus.publish({ type: 'sync.completed', env: 'prod', revision: 'r1', result: 'Failed', durationMs: 5, message: 'web: not ready' }); // a repeat
    bus.publish({ type: 'app.rolledBack', env: 'prod', app: 'web', revision: 'r1', message: 'rolled back to 1.9.0' });
    bus.publish({ type: 'sync.completed', env: 'staging', revision: 'r1', result: 'Failed', durationMs: 5, message: 'other env' });
    await n.idle();
    expect(received.map((r) => r.body.event)).toEqual(['syncFailed', 'rolledBack']);
    expect(received[0].headers['x-team']).toBe('pay');
    expect(received[0].body).toEqual({
      event: 'syncFailed', env: 'prod', app: null, revision: 'r1', versions: { web: '2.0.0', api: '1.4.0' }, result: 'Failed', message: 'web: not ready', link: 'http://keelson.test/status?env=prod', time: '2026-01-01T00:00:00.000Z',
    });
    expect(received[1].body).toMatchObject({ app: 'web', versions: { web: '2.0.0' }, result: 'Failed' });
    advance(61_000);
    bus.publish({ type: 'sync.completed', env: 'prod', revision: 'r1', result: 'Failed', durationMs: 5, message: 'web: not ready' });
    await n.idle();
    expect(received.map((r) => r.body.event)).toEqual(['syncFailed', 'rolledBack', 'syncFailed']);
  });

  it('tells of a failed certificate order or renewal (certificateFailed)', async () => {
    received.length = 0;
    const { bus, n } = setup([spec({ name: 'hook', url: `${base}/hook`, triggers: ['certificateFailed'] })]);
    bus.publish({ type: 'certificate.issued', env: 'prod', app: 'web', hosts: ['web.example.com'], notAfter: '2026-04-01T00:00:00.000Z', renewal: false });
    bus.publish({ type: 'certificate.failed', env: 'prod', app: 'web', hosts: ['web.example.com'], renewal: true, message: 'cannot reach the ACME directory https://acme.test/dir: ECONNREFUSED', retryAt: '2026-01-01T00:01:00.000Z' });
    await n.idle();
    expect(received.map((r) => r.body)).toEqual([
      expect.objectContaining({
        event: 'certificateFailed',
        app: 'web',
        result: 'Failed',
        message: 'renewal of the certificate for web.example.com failed: cannot reach the ACME directory https://acme.test/dir: ECONNREFUSED; retrying at 2026-01-01T00:01:00.000Z',
      }),
    ]);
  });

  it('sends Slack text to a URL read from the engine environment, and reports a healed drift once', async () => {
    received.length = 0;
    const { bus, n } = setup([spec({ name: 'chat', type: 'slack', urlEnv: 'SLACK_URL', triggers: ['driftHealed', 'healthDegraded'] })], { SLACK_URL: `${base}/slack` });
    bus.publish({ type: 'drift.detected', env: 'prod', app: 'api', kind: 'process-exited', message: 'replica api-1 (pid 42) is gone' });
    bus.publish({ type: 'replica.ready', env: 'prod', app: 'api', replica: 'api-1', ready: true });
    bus.publish({ type: 'replica.ready', env: 'prod', app: 'api', replica: 'api-2', ready: true });
    bus.publish({ type: 'health.changed', env: 'prod', app: 'web', from: 'Healthy', to: 'Degraded', message: 'web: 0/2 ready' });
    await n.idle();
    expect(received.map((r) => r.path)).toEqual(['/slack', '/slack']);
    expect(received[0].body).toEqual({ text: ':adhesive_bandage: *driftHealed* api in prod (Healthy) — api 1.4.0\ndrift of api healed: replica api-1 (pid 42) is gone <http://keelson.test/status?env=prod|details>' });
    expect(received[1].body.text).toMatch(/^:warning: \*healthDegraded\* web in prod \(Degraded\)/);
  });

  it('retries a 5xx once, then gives up with a notification.failed event that never shows the URL', async () => {
    received.length = 0;
    const secretUrl = `${base}/T000/B000/s3cr3t`;
    const { bus, n, events } = setup([spec({ name: 'hook', url: secretUrl, triggers: ['syncSucceeded'] })]);
    failNext = 1;
    bus.publish({ type: 'sync.completed', env: 'prod', revision: 'r2', result: 'Succeeded', durationMs: 5, message: 'ok' });
    await n.idle();
    expect(received).toHaveLength(1);
    failNext = 2;
    bus.publish({ type: 'sync.completed', env: 'prod', revision: 'r3', result: 'Succeeded', durationMs: 5, message: 'ok' });
    await n.idle();
    const failed = events.find((e) => e.type === 'notification.failed') as any;
    expect(failed).toMatchObject({ env: 'prod', notification: 'hook', trigger: 'syncSucceeded', message: 'answered 503' });
    expect(JSON.stringify(events)).not.toContain('s3cr3t');
  });
});
