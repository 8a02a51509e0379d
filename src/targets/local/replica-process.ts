/**
 * A replica's process, apart from the supervisor's bookkeeping: its record (blank, and as the store keeps it), how it
 * is spawned (detached, in its release dir, as its user, confined to its cgroup or systemd scope), how it is ended
 * (SIGTERM to its process group, SIGKILL after the grace period; adopted processes watched in /proc), and its port.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { DesiredApp } from '../../core/model.js';
import type { ReplicaRow } from '../../store/store.js';
import { isSameProcess, processStartTime, signalGroup, spawnDetached } from './process.js';
import type { ReleaseRef, Replica } from './supervisor-types.js';
import { scopeCommand } from './systemd-scope.js';

/** A replica not started yet (its log file under `<state>/logs/<env>/<app>/` unless adopted with its own). */
export function blankReplica(stateDir: string, env: string, app: string, spec: DesiredApp, template: string, release: ReleaseRef, port: number, id?: string, logPath?: string): Replica {
  const rid = id ?? `${app}-${randomBytes(3).toString('hex')}`;
  return {
    id: rid,
    env,
    app,
    spec,
    template,
    release,
    port,
    logPath: logPath ?? join(stateDir, 'logs', env, app, `${rid}.log`),
    pid: 0,
    startTime: '',
    state: 'starting',
    ready: false,
    draining: false,
    everReady: false,
    restarts: 0,
    failures: 0,
    startedAt: Date.now(),
    livenessFailures: 0,
    readinessFailures: 0,
    readinessSuccesses: 0,
    lastLogs: [],
    promptRestarts: [],
    timers: new Set(),
    limits: {},
  };
}

/** Spawns the replica's command detached (own session and process group), its output to `logFd`. */
export function spawnReplica(r: Replica, env: Record<string, string>, logFd: number): ReturnType<typeof spawnDetached> {
  const openFiles = r.limits.openFiles?.enforcement === 'rlimit' ? r.spec.resources?.openFiles : undefined;
  const ids = r.runAs ? { uid: r.runAs.uid, gid: r.runAs.gid } : undefined;
  return spawnDetached(
    r.cgroup?.unit
      ? // systemd makes the cgroup and the wrapper takes on the user: systemd-run itself runs as the engine.
        { command: scopeCommand(r.cgroup.unit, r.spec.resources ?? {}, r.spec.command, ids), cwd: r.release.dir, env, logFd }
      : {
          command: r.spec.command,
          cwd: r.release.dir,
          env,
          logFd,
          ...ids,
          confine: { cgroupProcs: r.cgroup?.procs ?? [], ...(openFiles !== undefined ? { openFiles } : {}) },
        },
  );
}

/** The store's record of a replica: what the next engine adopts it by (pid and start time, never a pid alone). */
export function replicaRow(r: Replica): ReplicaRow {
  return {
    id: r.id,
    env: r.env,
    app: r.app,
    pid: r.pid,
    startTime: r.startTime,
    port: r.port,
    releaseId: r.release.id,
    releaseDir: r.release.dir,
    releaseHash: r.release.hash,
    version: r.spec.version,
    specHash: r.template,
    logPath: r.logPath,
    startedAt: r.startedAt,
  };
}

/** SIGTERM to the replica's process group, SIGKILL after its grace period; resolves once its process is gone. */
export function terminateReplica(r: Replica): Promise<void> {
  if (!r.pid || !isSameProcess(r.pid, r.startTime)) return Promise.resolve();
  return new Promise((resolve) => {
    const graceMs = r.spec.terminationGracePeriodSeconds * 1000;
    let poll: NodeJS.Timeout | undefined;
    const kill = setTimeout(() => signalGroup(r.pid, 'SIGKILL'), graceMs);
    const done = () => {
      clearTimeout(kill);
      if (poll) clearInterval(poll);
      r.exited = undefined;
      resolve();
    };
    r.exited = done;
    // Adopted processes are not our children: no exit event, so watch /proc.
    poll = setInterval(() => {
      if (processStartTime(r.pid) !== r.startTime) done();
    }, 50);
    signalGroup(r.pid, 'SIGTERM');
  });
}

/** A free loopback port for a replica's PORT. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}
