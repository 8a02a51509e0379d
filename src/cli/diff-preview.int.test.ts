import { execFile } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { serve } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEngine, type EngineHarness } from '../../test/engine-harness.js';
import { bin, git, commitAll, writeTree } from '../../test/helpers.js';
import { createApi } from '../api/app.js';
import { silentLogger } from '../log.js';
import { Metrics } from '../metrics/metrics.js';

const run = promisify(execFile);

const hello = (version: string, greeting = 'hi') => `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: hello }
spec:
  version: "${version}"
  artifact: { path: ../bin }
  run:
    command: ["node", "-e", "setInterval(() => {}, 1000)"]
    env: { GREETING: ${greeting} }
---
apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata: { name: dev }
spec:
  apps: { hello: {} }
`;

/** `keelson diff --revision` against a real engine (local target) over its API, with the CLI as users run it. */
describe('keelson diff --revision (local target)', () => {
  let h: EngineHarness;
  let server: ReturnType<typeof serve>;
  let url: string;

  beforeAll(async () => {
    h = await startEngine({ 'apps/hello.yaml': hello('1.0.0'), 'bin/README': 'inline app\n' }, { prefix: 'keelson-preview-' });
    const api = createApi({ engine: h.engine, store: h.store, metrics: new Metrics(h.bus, { processes: () => 1, health: () => [] }), log: silentLogger() });
    server = await new Promise((res) => {
      const s = serve({ fetch: api.fetch, hostname: '127.0.0.1', port: 0 }, () => res(s));
    });
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    // A pull request's branch: the version bumped, one variable changed. Main stays where it is.
    git(h.ops, 'checkout', '-q', '-b', 'bump');
    writeTree(h.ops, { 'apps/hello.yaml': hello('1.1.0', 'hello') });
    commitAll(h.ops, 'hello 1.1.0');
    git(h.ops, 'checkout', '-q', '-');
  }, 120_000);

  afterAll(async () => {
    await new Promise((res) => server?.close(res));
    await h?.stop();
  });

  const cli = async (...args: string[]) => {
    try {
      const { stdout, stderr } = await run(process.execPath, [bin, 'diff', ...(args.includes('--repo') ? [] : ['--server', url]), ...args], { encoding: 'utf8', cwd: h.dir });
      return { code: 0, stdout, stderr };
    } catch (err: any) {
      return { code: err.code as number, stdout: err.stdout as string, stderr: err.stderr as string };
    }
  };

  it('shows the version bump of the branch as text, and nothing live changes', async () => {
    const before = await h.engine.status('dev');
    const r = await cli('--revision', 'bump');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^preview of [0-9a-f]{7} "hello 1\.1\.0" against live \(running [0-9a-f]{7}\)/);
    expect(r.stdout).toContain('environment dev');
    expect(r.stdout).toMatch(/update  hello 1\.0\.0 → 1\.1\.0 {2}\(changed: .*version/);
    expect(r.stdout).toContain('vars.GREETING: "hi" → "hello"');
    expect(r.stdout).toContain('1 app change in 1 environment');
    const after = await h.engine.status('dev');
    expect(after.revision).toBe(before.revision);
    expect(after.environments[0].apps[0]).toMatchObject({ version: '1.0.0', sync: 'Synced', health: 'Healthy' });
    expect(h.target.supervisor.status().flatMap((a) => a.instances.map((i: any) => i.pid))).toEqual(before.environments[0].apps[0].instances.map((i: any) => i.pid));
  });

  it('as Markdown for a pull-request comment, with --exit-code 1 when there are differences', async () => {
    const r = await cli('--revision', 'bump', '--format', 'markdown', '--exit-code');
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^### Keelson preview of `[0-9a-f]{7}`/);
    expect(r.stdout).toContain('#### Environment `dev`');
    expect(r.stdout).toContain('| `hello` | update | 1.0.0 → 1.1.0 |');
    expect(r.stdout).toContain('**Summary:** 1 app change in 1 environment');
  });

  it('the running revision previews as no changes, exit code 0; an unknown revision is an error', async () => {
    const head = git(h.ops, 'rev-parse', 'HEAD');
    const same = await cli('--revision', head, '--exit-code');
    expect(same.code).toBe(0);
    expect(same.stdout).toContain('no changes: live already equals');
    const missing = await cli('--revision', 'no-such-branch');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('`no-such-branch` is neither a branch, a tag nor a commit');
  });

  it('a revision that does not render shows its problems and exits 1', async () => {
    git(h.ops, 'checkout', '-q', '-b', 'broken');
    writeTree(h.ops, { 'apps/hello.yaml': hello('1.2.0').replace('version: "1.2.0"', 'version: 1.2.0\n  colour: blue') });
    commitAll(h.ops, 'broken');
    git(h.ops, 'checkout', '-q', '-');
    const r = await cli('--revision', 'broken');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('the revision does not render');
    expect(r.stdout).toMatch(/apps\/hello\.yaml:\d+:\d+: .*colour/);
  });

  it('without an engine (--repo): the same preview from the repository, live as the state dir last applied it', async () => {
    const withState = await cli('--revision', 'bump', '--repo', h.ops, '--state-dir', h.state, '--env', 'dev');
    expect(withState.stderr).toBe('');
    expect(withState.stdout).toMatch(/update  hello 1\.0\.0 → 1\.1\.0/);
    expect(withState.stdout).toContain('vars.GREETING: "hi" → "hello"');
    // Without a state dir nothing was applied as far as this preview knows: everything is to be created.
    const fresh = await cli('--revision', 'bump', '--repo', h.ops, '--format', 'markdown');
    expect(fresh.stdout).toContain('| `hello` | create | 1.1.0 | not running |');
    expect((await h.engine.status('dev')).environments[0].apps[0]).toMatchObject({ version: '1.0.0', sync: 'Synced' });
  });

  it('keelson diff --env plans the running revision as before; --exit-code 0 when in sync', async () => {
    const r = await cli('--env', 'dev', '--exit-code');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^environment dev at [0-9a-f]{12}\n {2}none {4}hello 1\.0\.0/);
    const usage = await cli();
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('keelson diff needs --env E');
  });
});
