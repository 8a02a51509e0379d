/**
 * An app's status as the supervisor reports it: its replicas, and its health with the reason, from the replicas it
 * supervises (pure: no process is looked at here).
 */
import type { HealthCode } from '../../core/types.js';
import type { AppRun, AppStatus, Replica } from './supervisor-types.js';

/** The app's status from its replicas (every set's). */
export function appStatusOf(run: AppRun, replicas: Replica[]): AppStatus {
  const mine = replicas.filter((r) => r.state !== 'stopped');
  const ready = mine.filter((r) => r.ready && !r.draining).length;
  const updated = mine.filter((r) => r.template === run.template && r.release.id === run.release.id).length;
  const { health, message } = healthOf(run, mine, ready, updated);
  return {
    env: run.env,
    app: run.app,
    spec: run.spec,
    template: run.template,
    revision: run.revision,
    version: run.spec.version,
    release: run.release,
    health,
    message,
    replicas: { desired: run.spec.replicas, ready, total: mine.length, updated },
    instances: mine.map((r) => ({
      id: r.id,
      pid: r.pid,
      port: r.port,
      version: r.spec.version,
      release: r.release.id,
      state: r.state,
      ready: r.ready,
      restarts: r.restarts,
      startedAt: new Date(r.startedAt).toISOString(),
      logPath: r.logPath,
      message: r.lastExit ?? r.lastProbe,
      ...(r.reason ? { reason: r.reason } : {}),
      ...(r.runAs ? { user: { name: r.runAs.user, group: r.runAs.group, uid: r.runAs.uid, gid: r.runAs.gid } } : {}),
      ...(Object.keys(r.limits).length ? { limits: r.limits } : {}),
      ...(r.cgroup?.dirs.length ? { cgroups: r.cgroup.dirs } : {}),
      ...(r.cgroup?.unit ? { scope: r.cgroup.unit } : {}),
    })),
  };
}

function healthOf(run: AppRun, mine: Replica[], ready: number, updated: number): { health: HealthCode; message: string } {
  const looping = mine.find((r) => r.failures >= 2 && !r.ready);
  if (looping) {
    const logs = looping.lastLogs.length ? `; last log lines:\n${looping.lastLogs.join('\n')}` : '';
    return { health: 'Degraded', message: `replica ${looping.id} is crash-looping (${looping.lastExit ?? 'exited'}; ${looping.restarts} restarts)${logs}` };
  }
  if (run.stalled && !run.rollingOut && ready < run.spec.replicas) return { health: 'Degraded', message: run.stalled };
  const unready = mine.find((r) => r.everReady && !r.ready && r.state === 'running');
  if (unready && ready < run.spec.replicas) {
    return { health: 'Degraded', message: `replica ${unready.id} is not ready: ${unready.lastProbe ?? 'probe failing'}` };
  }
  if (run.spec.replicas === 0) return { health: 'Healthy', message: 'scaled to zero' };
  if (mine.length === 0) return { health: 'Missing', message: 'no replica is running' };
  if (run.rollingOut || ready < run.spec.replicas || updated < mine.length) {
    return { health: 'Progressing', message: `${ready}/${run.spec.replicas} replicas ready` };
  }
  return { health: 'Healthy', message: `${ready}/${run.spec.replicas} replicas ready` };
}

/** Why a version is not ready: the replica given, or the first one not ready. */
export function notReadyMessage(run: AppRun, replicas: Replica[], r?: Replica): string {
  const rep = r ?? replicas.find((x) => !x.ready);
  const why = rep ? rep.lastExit ?? rep.lastProbe ?? 'no readiness yet' : 'no replica';
  return `version ${run.spec.version} did not become ready within ${run.spec.progressDeadlineSeconds}s (${why})`;
}
