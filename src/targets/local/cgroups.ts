/**
 * Resource limits of local replicas: one cgroup per replica, `keelson/<env>/<app>/<replica>`, where Keelson can
 * create cgroups, else rlimits where they apply.
 *
 * - cgroup v1 (a writable `memory`, `cpu`, `pids` hierarchy each): memory.limit_in_bytes (and memsw when swap is
 *   accounted), cpu.cfs_quota_us/cfs_period_us, pids.max; an OOM kill shows in memory.oom_control's `oom_kill`.
 * - cgroup v2: the root (engine at `/`) or a delegated subtree (Keelson's own cgroup is writable; the engine's
 *   processes move to a leaf `keelson-engine` so that controllers can be enabled below it): memory.max, cpu.max,
 *   pids.max; OOM kills in memory.events.
 * - `openFiles` is RLIMIT_NOFILE, always (set by the start wrapper before the app's code runs; see process.ts).
 * - systemd without a delegated subtree (cgroup v2, engine as root): a transient scope per replica, see
 *   systemd-scope.ts.
 * - No cgroups: memory, cpu and pids are not enforced, and status says why. RLIMIT_AS would limit address space
 *   rather than memory and breaks runtimes that reserve large address ranges (Node, Go, the JVM), so it is not used;
 *   RLIMIT_NPROC counts every process of the user, not of a replica.
 *
 * A replica's cgroup path is derived from env, app and replica id, so an engine restart finds it again.
 */
import { existsSync, readFileSync } from 'node:fs';
import { access, mkdir, readFile, rmdir, writeFile, constants } from 'node:fs/promises';
import { join } from 'node:path';
import type { AppResources } from '../../core/model.js';
import { formatBytes, formatMillicores } from '../../render/schema-isolation.js';
import { resetScope, scopeOomKilled, scopeUnit, stopScope, systemdAvailable } from './systemd-scope.js';

export type Enforcement = 'cgroup-v1' | 'cgroup-v2' | 'systemd-scope' | 'rlimit' | 'none';
export type LimitName = keyof AppResources;

export interface LimitStatus {
  /** As the ops repository says it, canonical: `256Mi`, `500m`, `200`. */
  value: string;
  enforcement: Enforcement;
  /** Why a limit is not enforced (or enforced less well than asked). */
  reason?: string;
}

export type LimitsStatus = Partial<Record<LimitName, LimitStatus>>;

type Controller = 'memory' | 'cpu' | 'pids';
const controllers: Controller[] = ['memory', 'cpu', 'pids'];

/** What this machine offers, found once per engine. */
export interface CgroupSystem {
  /** `systemd`: no subtree of our own, but systemd can make a scope per replica (see systemd-scope.ts). */
  version: 'v1' | 'v2' | 'systemd' | 'none';
  /** v1: the directory of Keelson's subtree in each usable hierarchy; v2: one directory for all. */
  bases: Partial<Record<Controller, string>>;
  /** Why a controller cannot be used (a missing hierarchy, no permission). */
  missing: Partial<Record<Controller, string>>;
}

export interface ReplicaCgroup {
  /** The replica's directories (one per v1 hierarchy, one for v2). */
  dirs: string[];
  /** The files the replica's pid is written into before it runs. */
  procs: string[];
  /** The replica's systemd scope unit, when systemd makes its cgroup. */
  unit?: string;
  /** Where OOM kills are counted, and the count when the replica started. */
  oomFile?: string;
  oomBaseline: number;
}

const root = '/sys/fs/cgroup';
const period = 100_000;

/** Finds the cgroup version and the hierarchies Keelson may write; never throws. */
export async function detectCgroups(opts: { root?: string } = {}): Promise<CgroupSystem> {
  const base = opts.root ?? root;
  if (existsSync(join(base, 'cgroup.controllers'))) {
    const v2 = await detectV2(base);
    // Not delegated: systemd can still make a cgroup per replica (a transient scope), as root.
    if (v2.version === 'none' && process.getuid?.() === 0 && (await systemdAvailable())) return { version: 'systemd', bases: {}, missing: {} };
    return v2;
  }
  const sys: CgroupSystem = { version: 'v1', bases: {}, missing: {} };
  for (const c of controllers) {
    const dir = join(base, c);
    if (!existsSync(join(dir, 'cgroup.procs'))) {
      sys.missing[c] = `no cgroup v1 "${c}" hierarchy at ${dir}`;
      continue;
    }
    const mine = join(dir, 'keelson');
    try {
      await mkdir(mine, { recursive: true });
      await access(join(mine, 'cgroup.procs'), constants.W_OK);
      sys.bases[c] = mine;
    } catch (err) {
      sys.missing[c] = `cannot create cgroups in ${dir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; the engine needs root or a delegated hierarchy)`;
    }
  }
  if (Object.keys(sys.bases).length === 0) sys.version = 'none';
  return sys;
}

async function detectV2(base: string): Promise<CgroupSystem> {
  const none = (why: string) => ({ version: 'none' as const, bases: {}, missing: Object.fromEntries(controllers.map((c) => [c, why])) });
  const own = /^0::(.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))?.[1]?.trim();
  if (own === undefined) return none('cannot find the engine\'s own cgroup in /proc/self/cgroup');
  const ownDir = join(base, own);
  try {
    await access(join(ownDir, 'cgroup.subtree_control'), constants.W_OK);
    await access(join(ownDir, 'cgroup.procs'), constants.W_OK);
  } catch {
    return none(`cgroup v2: the engine's cgroup ${ownDir} is not delegated to it (not writable); run it as root, or under systemd with Delegate=yes`);
  }
  const available = (await readFile(join(ownDir, 'cgroup.controllers'), 'utf8').catch(() => '')).split(/\s+/);
  try {
    if (own !== '/') {
      // No processes in a cgroup whose controllers are enabled below it (except the root): move them to a leaf.
      const leaf = join(ownDir, 'keelson-engine');
      await mkdir(leaf, { recursive: true });
      for (const pid of (await readFile(join(ownDir, 'cgroup.procs'), 'utf8')).split('\n').filter(Boolean)) {
        await writeFile(join(leaf, 'cgroup.procs'), pid).catch(() => undefined);
      }
    }
    const wanted = controllers.filter((c) => available.includes(c));
    if (wanted.length) await writeFile(join(ownDir, 'cgroup.subtree_control'), wanted.map((c) => `+${c}`).join(' '));
    const mine = join(ownDir, 'keelson');
    await mkdir(mine, { recursive: true });
    if (wanted.length) await writeFile(join(mine, 'cgroup.subtree_control'), wanted.map((c) => `+${c}`).join(' '));
    const sys: CgroupSystem = { version: 'v2', bases: {}, missing: {} };
    for (const c of controllers) {
      if (wanted.includes(c)) sys.bases[c] = mine;
      else sys.missing[c] = `cgroup v2: the "${c}" controller is not available to ${ownDir}`;
    }
    return sys;
  } catch (err) {
    return none(`cgroup v2: cannot set up a subtree under ${ownDir}: ${(err as Error).message}`);
  }
}

/** What enforces each limit the app declares, on this machine. */
export function limitsStatus(sys: CgroupSystem, r: AppResources | undefined): LimitsStatus {
  const out: LimitsStatus = {};
  if (!r) return out;
  const viaCgroup = (c: Controller, value: string, fallback: string): LimitStatus =>
    sys.version === 'systemd'
      ? { value, enforcement: 'systemd-scope' }
      : sys.bases[c] ? { value, enforcement: sys.version === 'v2' ? 'cgroup-v2' : 'cgroup-v1' } : { value, enforcement: 'none', reason: `${sys.missing[c] ?? 'no cgroups'}; ${fallback}` };
  if (r.memory !== undefined) {
    out.memory = viaCgroup('memory', formatBytes(r.memory), 'RLIMIT_AS is not a substitute (it limits address space, and breaks Node, Go and the JVM), so memory is not limited');
  }
  if (r.cpu !== undefined) out.cpu = viaCgroup('cpu', formatMillicores(r.cpu), 'no rlimit limits a CPU rate');
  if (r.pids !== undefined) out.pids = viaCgroup('pids', String(r.pids), 'RLIMIT_NPROC counts every process of the user, not of one replica, so it is not used');
  if (r.openFiles !== undefined) {
    out.openFiles = { value: String(r.openFiles), enforcement: 'rlimit' };
  }
  return out;
}

/** The replica's cgroup directories, derived (not stored): the same after an engine restart. */
export function replicaDirs(sys: CgroupSystem, env: string, app: string, replica: string, r: AppResources | undefined): { controller: Controller; dir: string }[] {
  const needed = controllersFor(r);
  const out: { controller: Controller; dir: string }[] = [];
  const seen = new Set<string>();
  for (const c of needed) {
    const base = sys.bases[c];
    if (!base) continue;
    const dir = join(base, env, app, replica);
    if (sys.version === 'v2' && seen.has(dir)) continue;
    seen.add(dir);
    out.push({ controller: c, dir });
  }
  return out;
}

function controllersFor(r: AppResources | undefined): Controller[] {
  if (!r) return [];
  return controllers.filter((c) => (c === 'memory' ? r.memory !== undefined : c === 'cpu' ? r.cpu !== undefined : r.pids !== undefined));
}

/** Creates (or finds again) the replica's cgroups with its limits; undefined when no limit uses a cgroup. */
export async function prepareReplicaCgroup(sys: CgroupSystem, env: string, app: string, replica: string, r: AppResources | undefined): Promise<ReplicaCgroup | undefined> {
  if (sys.version === 'systemd') {
    if (!controllersFor(r).length) return undefined;
    const unit = scopeUnit(env, app, replica);
    await resetScope(unit);
    return { dirs: [], procs: [], unit, oomBaseline: 0 };
  }
  const dirs = replicaDirs(sys, env, app, replica, r);
  if (!dirs.length || !r) return undefined;
  const cg: ReplicaCgroup = { dirs: dirs.map((d) => d.dir), procs: [], oomBaseline: 0 };
  for (const { controller, dir } of dirs) {
    await mkdir(dir, { recursive: true });
    cg.procs.push(join(dir, 'cgroup.procs'));
    if (sys.version === 'v1') await setV1(controller, dir, r);
    else await setV2(dir, r);
  }
  const memDir = dirs.find((d) => d.controller === 'memory')?.dir;
  if (memDir) {
    cg.oomFile = join(memDir, sys.version === 'v1' ? 'memory.oom_control' : 'memory.events');
    cg.oomBaseline = await oomKills(cg);
  }
  return cg;
}

/** The cgroup of a replica adopted after an engine restart (it exists if the replica was started with it). */
export async function adoptReplicaCgroup(sys: CgroupSystem, env: string, app: string, replica: string, r: AppResources | undefined): Promise<ReplicaCgroup | undefined> {
  if (sys.version === 'systemd') return controllersFor(r).length ? { dirs: [], procs: [], unit: scopeUnit(env, app, replica), oomBaseline: 0 } : undefined;
  const dirs = replicaDirs(sys, env, app, replica, r).filter((d) => existsSync(d.dir));
  if (!dirs.length) return undefined;
  const cg: ReplicaCgroup = { dirs: dirs.map((d) => d.dir), procs: dirs.map((d) => join(d.dir, 'cgroup.procs')), oomBaseline: 0 };
  const memDir = dirs.find((d) => d.controller === 'memory')?.dir;
  if (memDir) {
    cg.oomFile = join(memDir, sys.version === 'v1' ? 'memory.oom_control' : 'memory.events');
    cg.oomBaseline = await oomKills(cg);
  }
  return cg;
}

async function setV1(c: Controller, dir: string, r: AppResources): Promise<void> {
  if (c === 'memory' && r.memory !== undefined) {
    // memsw (memory + swap) must stay >= the memory limit: raise it first when lowering both would conflict.
    const memsw = join(dir, 'memory.memsw.limit_in_bytes');
    const hasMemsw = existsSync(memsw);
    if (hasMemsw) await writeFile(memsw, '-1').catch(() => undefined);
    await writeFile(join(dir, 'memory.limit_in_bytes'), String(r.memory));
    if (hasMemsw) await writeFile(memsw, String(r.memory)).catch(() => undefined);
  }
  if (c === 'cpu' && r.cpu !== undefined) {
    await writeFile(join(dir, 'cpu.cfs_period_us'), String(period));
    await writeFile(join(dir, 'cpu.cfs_quota_us'), String(Math.round((r.cpu * period) / 1000)));
  }
  if (c === 'pids' && r.pids !== undefined) await writeFile(join(dir, 'pids.max'), String(r.pids));
}

async function setV2(dir: string, r: AppResources): Promise<void> {
  if (r.memory !== undefined) {
    await writeFile(join(dir, 'memory.max'), String(r.memory));
    await writeFile(join(dir, 'memory.swap.max'), '0').catch(() => undefined);
  }
  if (r.cpu !== undefined) await writeFile(join(dir, 'cpu.max'), `${Math.round((r.cpu * period) / 1000)} ${period}`);
  if (r.pids !== undefined) await writeFile(join(dir, 'pids.max'), String(r.pids));
}

/** OOM kills counted in the replica's memory cgroup so far (0 when unknown). */
export async function oomKills(cg: ReplicaCgroup): Promise<number> {
  if (!cg.oomFile) return 0;
  const text = await readFile(cg.oomFile, 'utf8').catch(() => '');
  return Number(/^oom_kill (\d+)$/m.exec(text)?.[1] ?? 0);
}

/** True when the replica was OOM-killed since it started. */
export async function wasOomKilled(cg: ReplicaCgroup | undefined): Promise<boolean> {
  if (cg?.unit) return scopeOomKilled(cg.unit);
  return cg ? (await oomKills(cg)) > cg.oomBaseline : false;
}

/**
 * Removes a replica's cgroups once its processes are gone (stragglers of its process group are killed), then the
 * app's and environment's directories when they are empty.
 */
export async function removeReplicaCgroup(sys: CgroupSystem, env: string, app: string, replica: string): Promise<void> {
  if (sys.version === 'systemd') return stopScope(scopeUnit(env, app, replica));
  for (const base of new Set(Object.values(sys.bases))) {
    const dir = join(base, env, app, replica);
    if (!existsSync(dir)) continue;
    for (let i = 0; i < 50; i++) {
      const pids = (await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '')).split('\n').filter(Boolean);
      for (const pid of pids) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      try {
        await rmdir(dir);
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') break;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    await rmdir(join(base, env, app)).catch(() => undefined);
    await rmdir(join(base, env)).catch(() => undefined);
  }
}
