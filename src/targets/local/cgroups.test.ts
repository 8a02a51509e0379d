import { describe, expect, it } from 'vitest';
import { limitsStatus, replicaDirs, type CgroupSystem } from './cgroups.js';
import { scopeCommand, scopeUnit } from './systemd-scope.js';

const resources = { memory: 256 * 2 ** 20, cpu: 500, pids: 200, openFiles: 4096 };

describe('limits and their enforcement', () => {
  it('cgroup v1: one directory per hierarchy, derived from env, app and replica', () => {
    const sys: CgroupSystem = { version: 'v1', bases: { memory: '/cg/memory/keelson', cpu: '/cg/cpu/keelson', pids: '/cg/pids/keelson' }, missing: {} };
    expect(limitsStatus(sys, resources)).toEqual({
      memory: { value: '256Mi', enforcement: 'cgroup-v1' },
      cpu: { value: '500m', enforcement: 'cgroup-v1' },
      pids: { value: '200', enforcement: 'cgroup-v1' },
      openFiles: { value: '4096', enforcement: 'rlimit' },
    });
    expect(replicaDirs(sys, 'prod', 'web', 'web-abc', resources).map((d) => d.dir)).toEqual([
      '/cg/memory/keelson/prod/web/web-abc',
      '/cg/cpu/keelson/prod/web/web-abc',
      '/cg/pids/keelson/prod/web/web-abc',
    ]);
    // Only the hierarchies a declared limit needs.
    expect(replicaDirs(sys, 'prod', 'web', 'web-abc', { pids: 10 }).map((d) => d.dir)).toEqual(['/cg/pids/keelson/prod/web/web-abc']);
    expect(replicaDirs(sys, 'prod', 'web', 'web-abc', { openFiles: 1024 })).toEqual([]);
  });

  it('cgroup v2: one directory for all controllers', () => {
    const base = '/cg/system.slice/keelson.service/keelson';
    const sys: CgroupSystem = { version: 'v2', bases: { memory: base, cpu: base, pids: base }, missing: {} };
    expect(limitsStatus(sys, { memory: 2 ** 30 }).memory).toEqual({ value: '1Gi', enforcement: 'cgroup-v2' });
    expect(replicaDirs(sys, 'prod', 'web', 'web-abc', resources).map((d) => d.dir)).toEqual([`${base}/prod/web/web-abc`]);
  });

  it('without cgroups: nothing but openFiles is enforced, and each limit says why', () => {
    const why = 'cannot create cgroups in /sys/fs/cgroup/memory (EACCES; the engine needs root or a delegated hierarchy)';
    const sys: CgroupSystem = { version: 'none', bases: {}, missing: { memory: why, cpu: why, pids: why } };
    const s = limitsStatus(sys, resources);
    expect(s.memory).toMatchObject({ enforcement: 'none', reason: expect.stringContaining('RLIMIT_AS is not a substitute') });
    expect(s.memory?.reason).toContain(why);
    expect(s.cpu).toMatchObject({ enforcement: 'none', reason: expect.stringContaining('no rlimit limits a CPU rate') });
    expect(s.pids).toMatchObject({ enforcement: 'none', reason: expect.stringContaining('RLIMIT_NPROC counts every process of the user') });
    expect(s.openFiles).toEqual({ value: '4096', enforcement: 'rlimit' });
    expect(replicaDirs(sys, 'prod', 'web', 'web-abc', resources)).toEqual([]);
  });
});

describe('systemd scopes (cgroup v2 machines run by systemd, no delegated subtree)', () => {
  it('start each replica in its own scope with the limits, the user taken on inside with groups cleared', () => {
    const sys: CgroupSystem = { version: 'systemd', bases: {}, missing: {} };
    expect(limitsStatus(sys, resources)).toEqual({
      memory: { value: '256Mi', enforcement: 'systemd-scope' },
      cpu: { value: '500m', enforcement: 'systemd-scope' },
      pids: { value: '200', enforcement: 'systemd-scope' },
      openFiles: { value: '4096', enforcement: 'rlimit' },
    });
    const unit = scopeUnit('prod', 'web', 'web-3f2a1c');
    expect(unit).toBe('keelson-prod-web-web-3f2a1c.scope');
    const argv = scopeCommand(unit, resources, ['node', 'server.js; rm -rf /'], { uid: 998, gid: 997 });
    expect(argv.slice(0, 13)).toEqual([
      'systemd-run', '--scope', '--quiet', '--unit=keelson-prod-web-web-3f2a1c',
      '-p', `MemoryMax=${256 * 2 ** 20}`, '-p', 'MemorySwapMax=0', '-p', 'CPUQuota=50%', '-p', 'TasksMax=200', '--',
    ]);
    // The app's argv stays argv: positional arguments after the constant script, never part of it.
    expect(argv.slice(13, 15)).toEqual(['/bin/sh', '-c']);
    expect(argv[15]).not.toContain('server.js');
    expect(argv.slice(16)).toEqual(['keelson-replica', '4096', 'setpriv', '--reuid=998', '--regid=997', '--clear-groups', '--', 'node', 'server.js; rm -rf /']);
  });
});
