import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEngine, type EngineHarness } from '../../test/engine-harness.js';
import { commitAll, tempDir, waitFor } from '../../test/helpers.js';
import type { Stamped } from '../core/events.js';

/**
 * A target that cannot be reached is not a bad spec: the app is not held as Failed until the next commit, the
 * environment is retried with backoff, and the app deploys once the target answers, without any commit.
 */
describe('an unreachable target is retried, not held as failed', () => {
  const tmp = tempDir('keelson-transient-');
  let h: EngineHarness;
  let server: Server;
  let base = '';
  let unavailable = 2; // the artifact server answers 503 this many times first
  let requests = 0;
  const events: Stamped[] = [];
  let artifact: { body: Buffer; sha256: string };

  beforeAll(async () => {
    const src = join(tmp.dir, 'src', 'api-1.0.0');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'server.js'), 'setInterval(() => {}, 1000);\n');
    const file = join(tmp.dir, 'api.tar.gz');
    await tar.c({ gzip: true, file, cwd: join(tmp.dir, 'src') }, ['api-1.0.0']);
    const body = readFileSync(file);
    artifact = { body, sha256: createHash('sha256').update(body).digest('hex') };
    server = createServer((_req, res) => {
      requests++;
      if (unavailable-- > 0) return void res.writeHead(503).end('upstream down');
      res.writeHead(200, { 'content-length': artifact.body.length }).end(artifact.body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    h = await startEngine(undefined, { prefix: 'keelson-transient-engine-', beforeStart: (parts) => parts.bus.subscribe((e) => events.push(e)) });
  });

  afterAll(async () => {
    await h?.stop();
    server?.close();
    tmp.cleanup();
  });

  it('retries a download that failed with a server error and deploys the app without a new commit', async () => {
    writeFileSync(
      join(h.ops, 'apps/api.yaml'),
      `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: api }
spec:
  version: "1.0.0"
  artifact: { url: "${base}/api.tar.gz", sha256: "${artifact.sha256}" }
  run: { command: ["node", "server.js"] }
`,
    );
    writeFileSync(join(h.ops, 'environments.yaml'), 'apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: dev }\nspec:\n  apps: { tick: {}, api: {} }\n');
    // The first environment file declared dev already: keep one declaration.
    writeFileSync(join(h.ops, 'apps/tick.yaml'), readFileSync(join(h.ops, 'apps/tick.yaml'), 'utf8').split('---')[0]);
    commitAll(h.ops, 'add api');
    await h.engine.refresh();

    const failed = await waitFor('a failed attempt', () => events.find((e) => e.type === 'app.failed' && e.app === 'api'));
    expect((failed as { message: string }).message).toMatch(/HTTP 503 \(retrying with backoff\)$/);
    expect(h.store.failures('dev')).toEqual([]);
    const api = await waitFor('api running', async () => {
      const a = (await h.engine.status()).environments[0]?.apps.find((x) => x.name === 'api');
      return a?.sync === 'Synced' && a.health === 'Healthy' && a;
    });
    expect(api.version).toBe('1.0.0');
    expect(requests).toBe(3);
    // Each failed attempt was recorded, then the one that got through.
    const syncs = h.store.history({ env: 'dev', app: 'api', limit: 5 }).map((s) => s.result);
    expect(syncs).toEqual(['Succeeded', 'Failed', 'Failed']);
  });
});

/** A failure that retrying will not fix is held as Failed until the desired state changes, not retried with backoff. */
describe('a missing artifact directory is held as failed, not retried', () => {
  let h: EngineHarness;
  const events: Stamped[] = [];

  beforeAll(async () => {
    h = await startEngine(undefined, { prefix: 'keelson-missing-artifact-', beforeStart: (parts) => parts.bus.subscribe((e) => events.push(e)) });
  });

  afterAll(async () => {
    await h?.stop();
  });

  it('records the failure for the spec', async () => {
    writeFileSync(
      join(h.ops, 'apps/web.yaml'),
      `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: web }
spec:
  version: "2.0.0"
  artifact: { path: ../releases/web-2.0.0 }
  run: { command: ["node", "server.js"] }
`,
    );
    writeFileSync(join(h.ops, 'environments.yaml'), 'apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: dev }\nspec:\n  apps: { tick: {}, web: {} }\n');
    writeFileSync(join(h.ops, 'apps/tick.yaml'), readFileSync(join(h.ops, 'apps/tick.yaml'), 'utf8').split('---')[0]);
    commitAll(h.ops, 'add web without its release directory');
    await h.engine.refresh();

    const failure = await waitFor('the failure recorded', () => h.store.failures('dev').find((f) => f.app === 'web'));
    expect(failure.message).toMatch(/release of web 2\.0\.0 could not be prepared: .*ENOENT/);
    expect(failure.message).not.toMatch(/retrying with backoff/);
    const failed = events.find((e) => e.type === 'app.failed' && e.app === 'web') as { message: string } | undefined;
    expect(failed?.message).not.toMatch(/retrying with backoff/);
    const web = (await h.engine.status()).environments[0]?.apps.find((x) => x.name === 'web');
    expect(web?.sync).toBe('Failed');
  });
});
