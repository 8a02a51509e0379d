import { describe, expect, it } from 'vitest';
import { limitsStatus, replicaDirs, type CgroupSystem } from './cgroups.js';

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
