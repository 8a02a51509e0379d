import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { git, runCli, tempDir } from '../../test/helpers.js';
import { opsRepo } from '../../test/ops-fixture.js';

describe('keelson env create | list | destroy | gc (real git)', () => {
  const tmp = tempDir('keelson-envs-');
  afterAll(() => tmp.cleanup());

  it('creates an environment as a commit with owner, expiry and its own free ports', () => {
    const dir = join(tmp.dir, 'a');
    opsRepo(dir);
    const r = runCli(['env', 'create', 'pr-7', '--from', 'staging', '--set', 'web=1.0.0', '--ttl', '2h', '--port-base', '21000', '--repo', dir, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.file).toBe('envs/pr-7.yaml');
    expect(out.ports.web).toBeGreaterThanOrEqual(21000);
    expect(git(dir, 'log', '-1', '--format=%s')).toMatch(/^Create environment pr-7 from staging \(web=1.0.0\), expires /);
    const doc = parse(readFileSync(join(dir, 'envs/pr-7.yaml'), 'utf8'));
    expect(doc.metadata.name).toBe('pr-7');
    expect(doc.metadata.annotations['keelson.dev/owner']).toBe('Dana Dev <dana@example.com>');
    expect(doc.metadata.annotations['keelson.dev/created-from']).toBe('staging');
    expect(doc.spec.apps.web).toEqual({ version: '1.0.0', env: { GREETING: 'hello' }, port: out.ports.web });
    expect(Date.parse(doc.spec.expiresAt) - Date.parse(doc.metadata.annotations['keelson.dev/created-at'])).toBe(2 * 3600_000);
    // validate's port-conflict check passes with the new environment.
    expect(runCli(['validate', '--repo', dir]).code).toBe(0);
    const list = runCli(['env', 'list', '--repo', dir]);
    expect(list.stdout).toMatch(/pr-7\s+Dana Dev <dana@example.com>\s+\d+s\s+in 1h59m\s+staging/);
    // A second environment gets other ports.
    const second = JSON.parse(runCli(['env', 'create', 'pr-8', '--from', 'staging', '--port-base', '21000', '--repo', dir, '--json']).stdout);
    expect(second.ports.web).not.toBe(out.ports.web);
    expect(runCli(['validate', '--repo', dir]).code).toBe(0);
  });

  it('host routing shares the source ports and still validates', () => {
    const dir = join(tmp.dir, 'b');
    opsRepo(dir);
    expect(runCli(['env', 'create', 'qa-1', '--from', 'prod', '--hosts', '--repo', dir]).code).toBe(0);
    const doc = parse(readFileSync(join(dir, 'envs/qa-1.yaml'), 'utf8'));
    expect(doc.spec.routing).toBe('host');
    expect(doc.spec.apps.web.port).toBe(18081);
    expect(runCli(['validate', '--repo', dir]).code).toBe(0);
  });

  it('destroy and gc remove environments by commit; static ones need --force', () => {
    const dir = join(tmp.dir, 'c');
    opsRepo(dir);
    runCli(['env', 'create', 'old', '--from', 'staging', '--ttl', '1ms', '--repo', dir]);
    runCli(['env', 'create', 'keep', '--from', 'staging', '--ttl', '1h', '--repo', dir]);
    runCli(['env', 'create', 'gone', '--from', 'staging', '--repo', dir]);
    expect(runCli(['env', 'list', '--repo', dir]).stdout).toMatch(/old .*Expired/);
    const gc = runCli(['env', 'gc', '--repo', dir]);
    expect(gc.code, gc.stderr).toBe(0);
    expect(git(dir, 'log', '-1', '--format=%s')).toBe('Remove expired environment old');
    expect(git(dir, 'show', '--name-status', '--format=', 'HEAD')).toBe('D\tenvs/old.yaml');
    expect(existsSync(join(dir, 'envs/keep.yaml'))).toBe(true);
    expect(runCli(['env', 'gc', '--repo', dir]).stdout).toContain('no expired environments');

    expect(runCli(['env', 'destroy', 'gone', '--repo', dir]).code).toBe(0);
    expect(git(dir, 'log', '-1', '--format=%s')).toBe('Destroy environment gone');
    expect(existsSync(join(dir, 'envs/gone.yaml'))).toBe(false);
    const refused = runCli(['env', 'destroy', 'prod', '--repo', dir]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('--force');
    expect(git(dir, 'status', '--porcelain')).toBe('');
  });
});
