import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { commitAll, git, gitInit, tempDir, waitFor, writeTree } from '../../test/helpers.js';
import { createApi } from '../api/app.js';
import { AutoUpdater } from '../automation/auto-update.js';
import { Engine } from '../engine/engine.js';
import { EventBus, type Stamped } from '../core/events.js';
import { silentLogger } from '../log.js';
import { Metrics } from '../metrics/metrics.js';
import { Store } from '../store/store.js';
import { LocalTarget } from '../targets/local/local-target.js';
import { Authenticator, hashToken } from '../api/auth.js';
import { rollbackInfoSchema, rollbackResponseSchema } from '../api/rollback-schemas.js';
import { EngineWriter } from './engine-writer.js';

/**
 * The engine commits to its ops repository (real git): a bare "remote" the engine tracks by path, a seed working
 * copy that pushes to it, version automation from the tags of an app repository, and the API's GitOps rollback.
 */
const app = (name: string, policy = '') => `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: ${name} }
spec:
  version: "1.0.0"
  artifact: { path: ../bin }
  run: { command: ["node", "-e", "setInterval(() => {}, 1000)"] }${policy}
`;
const env = (name: string, apps: string) => `# the ${name} environment
apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata: { name: ${name} }
spec:
  apps:
${apps}`;

interface Running {
  engine: Engine;
  store: Store;
  bus: EventBus;
  target: LocalTarget;
  writer: EngineWriter;
  events: Stamped[];
  stop(): Promise<void>;
}

async function startEngine(repo: string, state: string): Promise<Running> {
  const log = silentLogger();
  const store = new Store(state);
  const bus = new EventBus();
  const events: Stamped[] = [];
  bus.subscribe((e) => events.push(e));
  let engine: Engine | undefined;
  const target = new LocalTarget({ stateDir: state, store, bus, log, requeue: (e) => engine?.requeue(e) });
  engine = new Engine({ repo, stateDir: state, log, store, bus, target, pollMs: 60_000 });
  const started = engine;
  const writer = new EngineWriter({ source: engine.source, refresh: () => started.refresh(), log });
  await engine.start();
  return {
    engine: started,
    store,
    bus,
    target,
    writer,
    events,
    async stop() {
      await target.supervisor.stopAll();
      await target.proxy.stop();
      await started.stop();
      store.close();
    },
  };
}

const versionOf = async (r: Running, e: string, a: string) => (await r.engine.status()).environments.find((x) => x.name === e)?.apps.find((x) => x.name === a);

describe('the engine writes to its ops repository (real git)', () => {
  const tmp = tempDir('keelson-writer-');
  const seed = join(tmp.dir, 'seed');
  const remote = join(tmp.dir, 'remote.git');
  const appRepo = join(tmp.dir, 'app-src');
  let r: Running;

  beforeAll(async () => {
    mkdirSync(appRepo);
    gitInit(appRepo);
    writeTree(appRepo, { VERSION: '1.0.0' });
    commitAll(appRepo, 'v1.0.0');
    git(appRepo, 'tag', 'v1.0.0');
    const policy = `\n  updatePolicy:\n    semver: "^1.0"\n    source: { gitTags: ${appRepo} }`;
    writeTree(seed, {
      'apps/web.yaml': app('web', policy),
      'apps/api.yaml': app('api'),
      'environments/dev.yaml': env('dev', '    web: { version: "1.0.0", autoUpdate: true }\n    api: { version: "1.0.0" }\n'),
      'environments/prod.yaml': env('prod', '    web: { version: "1.0.0" }\n'),
      'bin/README': 'inline app\n',
    });
    gitInit(seed);
    commitAll(seed, 'initial');
    git(tmp.dir, 'init', '-q', '--bare', '-b', 'main', remote);
    git(seed, 'remote', 'add', 'origin', remote);
    git(seed, 'push', '-q', 'origin', 'main');
    r = await startEngine(remote, join(tmp.dir, 'state'));
    await waitFor('apps healthy', async () => {
      const envs = (await r.engine.status()).environments;
      return envs.length === 2 && envs.every((e) => e.apps.length > 0 && e.apps.every((a) => a.health === 'Healthy'));
    });
  });

  afterAll(async () => {
    await r?.stop();
    tmp.cleanup();
  });

  it('reports the bare remote as writable', async () => {
    expect(await r.writer.status()).toEqual({ writable: true, reason: null });
  });

  it('auto-update commits a newer tag to the opted-in environment only, and the engine deploys it', async () => {
    const updater = new AutoUpdater({ writer: r.writer, bus: r.bus, log: silentLogger(), intervalMs: 3_600_000 });
    expect(await updater.runOnce()).toEqual([]); // nothing newer yet
    for (const tag of ['v1.1.0', 'v2.0.0']) {
      writeTree(appRepo, { VERSION: tag });
      commitAll(appRepo, tag);
      git(appRepo, 'tag', tag);
    }
    const done = await updater.runOnce();
    expect(done.map((u) => [u.app, u.to])).toEqual([['web', '1.1.0']]);
    const head = git(remote, 'rev-parse', 'main');
    expect(git(remote, 'log', '-1', '--format=%an <%ae>%n%B', head)).toMatch(/^Keelson <keelson@localhost>\nUpdate web 1\.0\.0 → 1\.1\.0 in dev\n[\s\S]*dev: 1\.0\.0 -> 1\.1\.0[\s\S]*Keelson-Actor: version automation/);
    expect(git(remote, 'show', '--format=', '--name-only', head)).toBe('environments/dev.yaml');
    expect(git(remote, 'show', `${head}:environments/dev.yaml`)).toContain('# the dev environment'); // comments kept
    await waitFor('web 1.1.0 deployed in dev', async () => {
      const a = await versionOf(r, 'dev', 'web');
      return a?.version === '1.1.0' && a.health === 'Healthy' && a.revision === head;
    });
    expect((await versionOf(r, 'prod', 'web'))?.version).toBe('1.0.0');
    expect(r.events.find((e) => e.type === 'automation.committed')).toMatchObject({ env: 'dev', app: 'web', from: '1.0.0', to: '1.1.0', commit: head });
    // Never a downgrade, nothing twice.
    expect(await updater.runOnce()).toEqual([]);
    expect(git(remote, 'rev-parse', 'main')).toBe(head);
  });

  it('retries once when the branch moved under it (non-fast-forward)', async () => {
    let first = true;
    const result = await r.writer.commit(async ({ dir }) => {
      if (first) {
        first = false;
        // Someone else pushes between our fetch and our push.
        git(seed, 'pull', '-q', '--ff-only', 'origin', 'main');
        writeTree(seed, { 'NOTES.md': 'a human commit\n' });
        commitAll(seed, 'notes');
        git(seed, 'push', '-q', 'origin', 'main');
      }
      return { changes: [{ path: join(dir, 'MORE.md'), content: 'from the engine\n' }], message: 'Engine note' };
    });
    expect(first).toBe(false);
    const log = git(remote, 'log', '--format=%s', '-2', 'main').split('\n');
    expect(log).toEqual(['Engine note', 'notes']);
    expect(result!.commit).toBe(git(remote, 'rev-parse', 'main'));
  });

  it('rolls back through the API: a commit naming who and why, deployed at once, audited', async () => {
    const token = 'kls_operator_token_for_tests_0123456789';
    const api = createApi({
      engine: r.engine,
      store: r.store,
      metrics: new Metrics(r.bus, { processes: () => 0, health: () => [] }),
      log: silentLogger(),
      auth: new Authenticator([{ name: 'olivia', role: 'operator', sha256: hashToken(token) }]),
      writer: r.writer,
    });
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const info = await (await api.request('/api/v1/environments/dev/apps/web/rollback', { headers })).json();
    expect(info).toMatchObject({ writable: true, reason: null, target: { version: '1.0.0' } });
    rollbackInfoSchema.parse(info); // the shapes the OpenAPI document declares

    const res = await api.request('/api/v1/environments/dev/apps/web/rollback', { method: 'POST', headers, body: JSON.stringify({ to: info.target.revision, reason: 'errors in 1.1.0' }) });
    const body = await res.json();
    expect(res.status, JSON.stringify(body)).toBe(200);
    rollbackResponseSchema.parse(body);
    expect(body).toMatchObject({ result: 'Committed', versionFrom: '1.1.0', versionTo: '1.0.0', to: info.target.revision, branch: 'main' });
    expect(body.commit).toBe(git(remote, 'rev-parse', 'main'));
    expect(git(remote, 'log', '-1', '--format=%B', 'main')).toMatch(/^Roll back web in dev to [0-9a-f]{7} \(1\.1\.0 → 1\.0\.0\)\n\nWho: olivia[\s\S]*Why: errors in 1\.1\.0[\s\S]*Keelson-Rollback: env=dev app=web/);
    await waitFor('web 1.0.0 deployed in dev', async () => {
      const a = await versionOf(r, 'dev', 'web');
      return a?.version === '1.0.0' && a.health === 'Healthy' && a.revision === body.commit;
    });
    const audit = await (await api.request('/api/v1/audit?limit=5', { headers })).json();
    expect(audit.entries[0]).toMatchObject({ actor: 'olivia', action: 'rollback', result: 'succeeded', target: '/api/v1/environments/dev/apps/web/rollback' });

    // Again: nothing left to roll back to that differs → a clear 409.
    const again = await api.request('/api/v1/environments/dev/apps/web/rollback', { method: 'POST', headers, body: JSON.stringify({ to: info.target.revision }) });
    expect(again.status).toBe(409);
    expect((await again.json()).message).toContain('nothing to roll back');
    const bad = await api.request('/api/v1/environments/dev/apps/web/rollback', { method: 'POST', headers, body: JSON.stringify({ to: 'no-such-rev' }) });
    expect(bad.status).toBe(409);
    expect((await bad.json()).message).toContain('unknown revision "no-such-rev"');
  });
});

describe('a working copy as the remote', () => {
  const tmp = tempDir('keelson-writer-wc-');
  let r: Running | undefined;
  afterEach(async () => {
    await r?.stop();
    tmp.cleanup();
  });

  it('is refused with a clear error, and the working tree is left alone', async () => {
    const ops = join(tmp.dir, 'ops');
    writeTree(ops, { 'apps/web.yaml': app('web'), 'environments/dev.yaml': env('dev', '    web: { version: "1.0.0" }\n'), 'bin/README': 'x\n' });
    gitInit(ops);
    const head = commitAll(ops, 'initial');
    r = await startEngine(ops, join(tmp.dir, 'state'));
    await waitFor('fetched', async () => (await r!.engine.status()).revision === head);
    const st = await r.writer.status();
    expect(st).toEqual({ writable: false, reason: `the ops repository at ${ops} is a working copy; use keelson rollback/update there, or point Keelson at a bare or hosted repository` });
    await expect(r.writer.commit(async ({ dir }) => ({ changes: [{ path: join(dir, 'x'), content: 'x' }], message: 'x' }))).rejects.toThrow(/is a working copy/);
    expect(git(ops, 'rev-parse', 'HEAD')).toBe(head);
    expect(git(ops, 'status', '--porcelain')).toBe('');
  });
});
