import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { commitAll, git, gitInit, runCli, tempDir, writeTree } from '../../test/helpers.js';
import { newerVersion } from './update.js';

describe('keelson update (version automation, real git)', () => {
  const tmp = tempDir('keelson-update-');
  afterAll(() => tmp.cleanup());

  it('commits the newest matching tag to opted-in environments only, naming old and new versions', () => {
    const appRepo = join(tmp.dir, 'app');
    mkdirSync(appRepo);
    gitInit(appRepo);
    for (const tag of ['v1.2.0', 'v1.3.1', 'v1.4.0-rc.1', 'v2.0.0', 'not-a-version']) {
      writeTree(appRepo, { 'VERSION': tag });
      commitAll(appRepo, tag);
      git(appRepo, 'tag', tag);
    }
    const ops = join(tmp.dir, 'ops');
    const env = (name: string, extra: string) => `# ${name} environment
apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata:
  name: ${name}
spec:
  apps:
    web:
      version: "1.2.0"${extra}
`;
    writeTree(ops, {
      'web.yaml': `apiVersion: keelson.dev/v1alpha1
kind: App
metadata:
  name: web
spec:
  version: "1.2.0"
  artifact:
    path: releases/web-{version}
  run:
    command: ["node", "server.js"]
  updatePolicy:
    semver: "^1.2"
    source:
      gitTags: ../app
`,
      'worker.yaml': `apiVersion: keelson.dev/v1alpha1
kind: App
metadata:
  name: worker
spec:
  version: "0.9.0"
  artifact:
    path: releases/worker-{version}
  run:
    command: ["node", "w.js"]
  updatePolicy:
    semver: "~0.9"
    source:
      directory: releases
`,
      'staging.yaml': env('staging', '\n      autoUpdate: true   # follow new releases\n    worker:\n      autoUpdate: true'),
      'prod.yaml': env('prod', '\n    worker: {}'),
      'releases/web-1.2.0/s.js': '',
      'releases/web-1.3.1/s.js': '',
      'releases/worker-0.9.0/w.js': '',
      'releases/worker-0.9.4/w.js': '',
      'releases/worker-0.10.0/w.js': '',
    });
    gitInit(ops);
    const base = commitAll(ops, 'ops');

    const dry = JSON.parse(runCli(['update', '--repo', ops, '--dry-run', '--json']).stdout);
    expect(dry.updates).toEqual([
      { app: 'web', semver: '^1.2', to: '1.3.1', changes: [{ env: 'staging', from: '1.2.0', to: '1.3.1' }] },
      { app: 'worker', semver: '~0.9', to: '0.9.4', changes: [{ env: 'staging', from: '0.9.0', to: '0.9.4' }] },
    ]);
    expect(git(ops, 'rev-parse', 'HEAD')).toBe(base);

    const r = runCli(['update', '--repo', ops]);
    expect(r.code, r.stderr).toBe(0);
    expect(git(ops, 'log', '--format=%s', `${base}..HEAD`).split('\n')).toEqual([
      'Update worker 0.9.0 → 0.9.4 in staging',
      'Update web 1.2.0 → 1.3.1 in staging',
    ]);
    const staging = readFileSync(join(ops, 'staging.yaml'), 'utf8');
    expect(staging).toContain('version: "1.3.1"');
    expect(staging).toContain('autoUpdate: true   # follow new releases');
    expect(readFileSync(join(ops, 'prod.yaml'), 'utf8')).toContain('version: "1.2.0"');
    expect(runCli(['update', '--repo', ops]).stdout).toContain('everything is up to date');
  });

  it('picks the newest version in range, never a downgrade', () => {
    expect(newerVersion(['1.2.0', '1.3.1', '2.0.0'], '^1.2', '1.2.0')).toBe('1.3.1');
    expect(newerVersion(['1.2.0', '1.3.1'], '^1.2', '1.4.0')).toBeNull();
    expect(newerVersion(['1.2.0'], '^3', '1.2.0')).toBeNull();
  });
});
