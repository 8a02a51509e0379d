/**
 * Property-based fuzzing of the HTTP API through the real Hono app over a real engine (git ops repository,
 * supervised process, an app with a SOPS secret): arbitrary methods, paths, query strings, headers and bodies.
 * No answer is a 500, every 4xx is JSON with a message, and no answer carries a secret the fixture knows.
 */
import { createHmac, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEngine, tickRepo, type EngineHarness } from '../../test/engine-harness.js';
import { fuzzParams } from '../../test/fuzz.js';
import { commitAll, waitFor, writeTree } from '../../test/helpers.js';
import { silentLogger } from '../log.js';
import { Metrics } from '../metrics/metrics.js';
import { generateKey } from '../secrets/age-keys.js';
import { encryptSops, parsePlain } from '../secrets/sops.js';
import { createApi } from './app.js';
import { AuditLog } from './audit.js';
import { Authenticator, hashToken } from './auth.js';
import { routeDocs } from './openapi.js';

const tokens = { admin: `kls_admin_${randomBytes(8).toString('hex')}`, viewer: `kls_viewer_${randomBytes(8).toString('hex')}` };
const webhookSecret = `whsec-${randomBytes(8).toString('hex')}`;
const secretValue = `tok-${randomBytes(12).toString('hex')}`;

/** An answer: status, content type and (up to a moment of a stream) its body. */
interface Answer {
  status: number;
  type: string;
  text: string;
}

/** Reads a body until it ends or `ms` passed (log follow, event streams and one-off runs stream on). */
async function readSome(res: Response, ms = 300): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let text = '';
  const deadline = Date.now() + ms;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    let timer: NodeJS.Timeout | undefined;
    const next = await Promise.race([reader.read(), new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), left)))]);
    clearTimeout(timer);
    if (next === 'timeout' || next.done) break;
    text += dec.decode(next.value, { stream: true });
  }
  await reader.cancel().catch(() => undefined);
  return text;
}

// ---- requests ------------------------------------------------------------------------------------

const segment = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('dev', 'tick', 'leaky') },
  { weight: 1, arbitrary: fc.constantFrom('nope', '..', '.', '%2e%2e', '%00', 'a%2Fb', '%E2%80%AE', 'DEV', '-', 'x'.repeat(300), '%', '%zz') },
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }).map(encodeURIComponent) },
);

/** A documented route with its parameters filled in, or a path of random segments. */
const path = fc.oneof(
  { weight: 5, arbitrary: fc.tuple(fc.constantFrom(...routeDocs.map((r) => r.path)), segment, segment).map(([p, a, b]) => p.replace(':env', a).replace(':app', b).replace(':file', b)) },
  { weight: 1, arbitrary: fc.array(segment, { maxLength: 6 }).map((s) => `/api/v1/${s.join('/')}`) },
  { weight: 1, arbitrary: fc.constantFrom('/', '//', '/api', '/api/v1', '/api/v1/', '/ui/../../etc/passwd', '/ui/%2e%2e%2fpackage.json', '/api/v1/webhooks/git', '/api/v1/events?x=1') },
);

const QUERY_KEYS = ['env', 'app', 'limit', 'tail', 'follow', 'revision', 'q', 'offset', 'action', 'actor', 'health', 'sync', 'page', 'sort'];
const queryValue = fc.oneof(
  fc.constantFrom('', 'dev', 'tick', '0', '-1', '1', '10', '1e309', 'NaN', 'Infinity', '99999999999999999999', 'true', 'HEAD', 'main', '../..', '0x10'),
  fc.string({ maxLength: 10 }),
);
const query = fc.array(fc.tuple(fc.oneof(fc.constantFrom(...QUERY_KEYS), fc.string({ maxLength: 5 })), queryValue), { maxLength: 4 }).map((pairs) => {
  // follow streams on for as long as the client reads; the reader above stops after a moment anyway
  const q = new URLSearchParams(pairs);
  const s = q.toString();
  return s ? `?${s}` : '';
});

const BODY_KEYS = ['app', 'force', 'confirmPrune', 'full', 'to', 'reason', 'timeoutSeconds', 'env', 'version', 'name', 'revision', 'apps', 'ttl'];
const jsonBody = fc.oneof(
  { weight: 4, arbitrary: fc.dictionary(fc.constantFrom(...BODY_KEYS), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 2, arbitrary: fc.constantFrom(null, 0, '', [], 'null', true) },
  // one-off runs get argv that cannot resolve to a real program, or the harmless `true`
  { weight: 1, arbitrary: fc.record({ argv: fc.oneof(fc.constant(['true']), fc.array(fc.string({ maxLength: 6 }).map((s) => `no-such-prog-${s}`), { maxLength: 2 }), fc.jsonValue({ maxDepth: 1 })), timeoutSeconds: fc.oneof(fc.constant(1), fc.jsonValue({ maxDepth: 0 })) }, { requiredKeys: [] }) },
).map((v) => JSON.stringify(v));

const body = fc.option(
  fc.oneof(
    { weight: 4, arbitrary: jsonBody },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 100 }) },
    { weight: 1, arbitrary: fc.constantFrom('{', '{"app":', '[1,2', '\u0000', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{}}}') },
  ),
  { nil: undefined },
);

const headers = fc.record(
  {
    authorization: fc.oneof(
      { weight: 4, arbitrary: fc.constant(`Bearer ${tokens.admin}`) },
      { weight: 1, arbitrary: fc.constant(`Bearer ${tokens.viewer}`) },
      { weight: 1, arbitrary: fc.constantFrom('', 'Bearer', 'Bearer ', 'Basic YWRtaW46YWRtaW4=', `bearer ${tokens.admin}`, `Bearer ${tokens.admin}x`) },
      { weight: 1, arbitrary: fc.string({ maxLength: 20 }) },
    ),
    'content-type': fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', '', 'application/json; charset=utf-16'),
    accept: fc.constantFrom('*/*', 'application/json', 'text/event-stream', 'text/html'),
    'x-hub-signature-256': fc.constantFrom(`sha256=${'0'.repeat(64)}`, 'sha256=zz'),
    'x-gitlab-token': fc.constantFrom('nope', ''),
    origin: fc.constantFrom('http://localhost', 'http://evil.example', 'null'),
  },
  { requiredKeys: ['authorization'] },
);

const method = fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD');

describe('API fuzz', () => {
  let h: EngineHarness;
  let api: ReturnType<typeof createApi>;
  let ageIdentity: string;
  const leaks = (text: string) => {
    const secrets = [secretValue, Buffer.from(secretValue).toString('base64').replace(/=+$/, ''), webhookSecret, tokens.admin, tokens.viewer, ageIdentity];
    return secrets.filter((s) => text.includes(s));
  };

  async function send(m: string, url: string, init: { body?: string; headers?: Record<string, string | undefined> }, readMs = 300): Promise<Answer> {
    const hdrs = Object.fromEntries(Object.entries(init.headers ?? {}).filter((e): e is [string, string] => e[1] !== undefined));
    const withBody = m !== 'GET' && m !== 'HEAD' && init.body !== undefined;
    const res = await api.request(url, { method: m, headers: hdrs, ...(withBody ? { body: init.body } : {}) });
    return { status: res.status, type: res.headers.get('content-type') ?? '', text: await readSome(res, readMs) };
  }

  function expectSafe(a: Answer, what: string): void {
    expect(a.status, `${what} answered ${a.status}: ${a.text.slice(0, 300)}`).toBeLessThan(500);
    if (a.status >= 400 && !what.startsWith('HEAD ')) {
      expect(a.type, `${what}: a ${a.status} is JSON`).toContain('application/json');
      const parsed = JSON.parse(a.text) as { message?: unknown };
      expect(typeof parsed.message === 'string' && parsed.message.trim().length > 0, `${what}: ${a.status} without a message: ${a.text}`).toBe(true);
    }
    expect(leaks(a.text), `${what} leaked a secret`).toEqual([]);
  }

  beforeAll(async () => {
    const key = await generateKey();
    ageIdentity = key.identity;
    process.env.KEELSON_AGE_KEY = key.identity;
    h = await startEngine(tickRepo, {
      prefix: 'keelson-api-fuzz-',
      beforeStart: (parts) => {
        const metrics = new Metrics(parts.bus, { processes: () => 1, health: () => [] });
        const auth = new Authenticator(Object.entries(tokens).map(([role, t]) => ({ name: `${role}-user`, role: role as 'admin', sha256: hashToken(t) })));
        api = createApi({
          engine: parts.engine,
          store: parts.store,
          metrics,
          log: silentLogger(),
          auth,
          audit: new AuditLog(parts.store.db),
          webhookSecret,
          // limits high enough that the fuzzer reaches the routes; the limits have tests of their own
          webhookRate: { burst: 1e9, perSecond: 1e9 },
          authFailuresPerMinute: 1e9,
        });
      },
    });
    writeTree(h.ops, {
      'secrets/app.enc.yaml': await encryptSops(parsePlain(`token: ${secretValue}\n`, 'yaml', 'app'), { format: 'yaml', recipients: [key.recipient] }),
      'apps/leaky.yaml': `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: leaky }
spec:
  version: "1"
  artifact: { path: ../bin }
  run: { command: ["node", "-e", "console.log('token ' + process.env.TOKEN); setInterval(() => {}, 1000)"] }
  secrets:
    env:
      - { name: TOKEN, file: ../secrets/app.enc.yaml, key: token }
`,
      'apps/tick.yaml': tickRepo['apps/tick.yaml'].replace('apps: { tick: {} }', 'apps: { tick: {}, leaky: {} }'),
    });
    commitAll(h.ops, 'an app with a secret');
    await h.engine.refresh();
    await waitFor('leaky healthy', async () => (await h.engine.status()).environments[0]?.apps.find((a) => a.name === 'leaky')?.health === 'Healthy', 60_000);
  }, 120_000);

  afterAll(async () => {
    await h?.stop();
    delete process.env.KEELSON_AGE_KEY;
  });

  it('the fixture serves the secret app, its log masked', async () => {
    const logs = await waitFor('leaky logged', async () => {
      const a = await send('GET', '/api/v1/environments/dev/apps/leaky/logs', { headers: { authorization: `Bearer ${tokens.viewer}` } });
      return a.text.includes('token ') && a;
    });
    expect(logs.text).toContain('token ***');
    expectSafe(logs, 'GET logs');
  });

  it('arbitrary requests: no 500, every 4xx JSON with a message, no secret in any answer', async () => {
    await fc.assert(
      fc.asyncProperty(method, path, query, body, headers, async (m, p, q, b, hd) => {
        const url = `${p}${q}`;
        try {
          new URL(url, 'http://localhost');
        } catch {
          fc.pre(false);
        }
        expectSafe(await send(m, url, { body: b, headers: hd }), `${m} ${url} ${b ?? ''}`);
      }),
      fuzzParams(300),
    );
  }, 180_000);

  it('random bodies on the routes that take one (sync, promote, rollback, pause, run, webhook)', async () => {
    const posts = routeDocs.filter((r) => r.method === 'POST').map((r) => r.path);
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...posts, '/api/v1/webhooks/git'), fc.constantFrom('dev', 'nope'), fc.constantFrom('tick', 'leaky', 'nope'), body, headers, async (p, env, app, b, hd) => {
        const url = p.replace(':env', env).replace(':app', app);
        const hdrs = { ...hd, authorization: `Bearer ${tokens.admin}` };
        const ans = await send('POST', url, { body: b, headers: hdrs });
        expectSafe(ans, `POST ${url} ${b ?? ''}`);
      }),
      fuzzParams(200),
    );
  }, 180_000);

  it('random query strings on every GET route, as admin', async () => {
    const gets = routeDocs.filter((r) => r.method === 'GET' && r.path !== '/api/v1/events').map((r) => r.path);
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...gets), fc.constantFrom('dev', 'nope'), fc.constantFrom('tick', 'leaky', 'nope', 'app.js'), query, async (p, env, app, q) => {
        const url = `${p.replace(':env', env).replace(':app', app).replace(':file', app)}${q}`;
        expectSafe(await send('GET', url, { headers: { authorization: `Bearer ${tokens.admin}` } }), `GET ${url}`);
      }),
      fuzzParams(300),
    );
  }, 180_000);

  it('webhooks: a bad signature is always refused, a good one accepted', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: 'binary', maxLength: 200 }), fc.boolean(), async (text, good) => {
        const sig = createHmac('sha256', good ? webhookSecret : `${webhookSecret}x`).update(Buffer.from(text)).digest('hex');
        const a = await send('POST', '/api/v1/webhooks/git', { body: text, headers: { 'x-hub-signature-256': `sha256=${sig}` } });
        expect(a.status).toBe(good ? 202 : 403);
        expectSafe(a, 'POST webhook');
      }),
      fuzzParams(50),
    );
  });

  it('a one-off run with any timeoutSeconds runs to its end (a huge one used to kill it at once)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.double({ min: 30, max: 1e300, noNaN: true }), fc.constantFrom(2_147_484, 1e7, Number.MAX_VALUE)), async (t) => {
        const a = await send('POST', '/api/v1/environments/dev/apps/tick/run', {
          body: JSON.stringify({ argv: ['node', '-e', 'setTimeout(() => console.log("ran to the end"), 200)'], timeoutSeconds: t }),
          headers: { authorization: `Bearer ${tokens.admin}`, 'content-type': 'application/json' },
        }, 20_000);
        expect(a.status).toBe(200);
        const frames = a.text.trim().split('\n').map((l) => JSON.parse(l));
        expect(frames.at(-1), `timeoutSeconds ${t}: ${a.text}`).toMatchObject({ exit: { code: 0, signal: null } });
        expect(a.text).toContain('ran to the end');
      }),
      { ...fuzzParams(), numRuns: 5 }, // each run spawns a process; a few values cover the overflow
    );
  }, 120_000);

  describe('regressions', () => {
    // seed -1847058996: timeoutSeconds 2147484 (just above 2^31-1 ms) killed the run after 8 ms (SIGTERM)
    it('a one-off run with timeoutSeconds 2147484 exits 0 instead of being killed at once', async () => {
      const a = await send('POST', '/api/v1/environments/dev/apps/tick/run', {
        body: JSON.stringify({ argv: ['node', '-e', 'setTimeout(() => console.log("ran to the end"), 200)'], timeoutSeconds: 2147484 }),
        headers: { authorization: `Bearer ${tokens.admin}`, 'content-type': 'application/json' },
      }, 20_000);
      expect(a.text.trim().split('\n').map((l) => JSON.parse(l)).at(-1)).toMatchObject({ exit: { code: 0, signal: null } });
    });
    // seed -1789874046: GET /api/v1/history?limit=tick answered 500 "datatype mismatch" (NaN reached SQLite)
    it.each(['tick', 'NaN', '1.5', '1e400', '0x'])('GET /api/v1/history?limit=%s is a 400 with a message, not a 500', async (limit) => {
      const a = await send('GET', `/api/v1/history?limit=${limit}`, { headers: { authorization: `Bearer ${tokens.viewer}` } });
      expect(a.status).toBe(400);
      expect(JSON.parse(a.text).message).toMatch(/^"limit" must be a whole number \(1 to 1000\)/);
    });
    it('GET /api/v1/history with an empty or large limit still answers', async () => {
      for (const q of ['?limit=', '?limit=99999', '?limit=-5', '']) expect((await send('GET', `/api/v1/history${q}`, { headers: { authorization: `Bearer ${tokens.viewer}` } })).status).toBe(200);
    });

    // seed 1022972046: POST /api/v1/environments/dev/sync with the JSON body `null` answered 500 (TypeError)
    it.each([
      ['/api/v1/environments/dev/sync', 'null'],
      ['/api/v1/environments/dev/sync', '[]'],
      ['/api/v1/environments/dev/sync', '"tick"'],
      ['/api/v1/environments/dev/apps/tick/rollout/promote', 'null'],
      ['/api/v1/environments/dev/apps/tick/rollout/promote', '[true]'],
    ])('POST %s with the JSON body %s is a 400 with a message, not a 500', async (url, b) => {
      const a = await send('POST', url, { body: b, headers: { authorization: `Bearer ${tokens.admin}`, 'content-type': 'application/json' } });
      expect(a.status).toBe(400);
      expect(JSON.parse(a.text).message).toMatch(/^the body must be a JSON object/);
    });
  });
});
