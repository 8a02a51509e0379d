/**
 * Probing a running replica, with Kubernetes semantics: readiness until first ready every 20 ms for 2 s, then every
 * `startupProbeMs` (a startup probe), then every `periodSeconds`; a replica ready once needs `failureThreshold`
 * misses to leave rotation. Liveness starts after `initialDelaySeconds` and only counts once the replica was ready;
 * `failureThreshold` misses kill its process group (the restart policy then restarts it). The supervisor is the
 * host: it runs each probe in the replica's context and acts on readiness.
 */
import type { Probe } from '../../core/model.js';
import type { Logger } from '../../log.js';
import type { ProbeResult } from './probes.js';
import { signalGroup } from './process.js';
import type { Replica } from './supervisor-types.js';

export interface ProbeHost {
  /** The supervisor detached (the engine stopped): the replicas are the next engine's to probe. */
  closed(): boolean;
  /** How often readiness is probed until first ready, after the first 2 s. */
  startupProbeMs: number;
  /** One probe attempt in the replica's own context. */
  probe(r: Replica, probe: Probe): Promise<ProbeResult>;
  setReady(r: Replica, ready: boolean): void;
  /** Runs `fn` later, unless the supervisor has been detached or the replica's timers cleared by then. */
  after(r: Replica, ms: number, fn: () => void): void;
  log: Logger;
}

/** A replica's readiness probe: the declared one, else a TCP connect for an app with a port, else none. */
export function readinessProbe(r: Replica): Probe | undefined {
  if (r.spec.readiness) return r.spec.readiness;
  // Without a declared probe, an app with a port is ready once it accepts connections.
  if (r.spec.port !== undefined) {
    return { tcp: {}, initialDelaySeconds: 0, periodSeconds: 10, timeoutSeconds: 1, failureThreshold: 3, successThreshold: 1 };
  }
  return undefined;
}

/** Starts probing a replica that runs: readiness (fast until first ready), and liveness once it was ready. */
export function scheduleProbes(host: ProbeHost, r: Replica, delayMs: number): void {
  const readiness = readinessProbe(r);
  // A detached supervisor (the engine stopped or restarted) leaves the replicas to the next one: a probe still
  // under way when it detached neither acts on its result nor schedules another.
  const supervising = () => !host.closed() && r.state === 'running';
  const probeReadiness = async () => {
    if (!supervising()) return;
    if (!readiness) {
      host.setReady(r, true);
      return;
    }
    const res = await host.probe(r, readiness);
    if (!supervising()) return;
    r.lastProbe = res.ok ? undefined : `readiness: ${res.message}`;
    if (res.ok) {
      r.readinessFailures = 0;
      if (++r.readinessSuccesses >= readiness.successThreshold) host.setReady(r, true);
    } else {
      r.readinessSuccesses = 0;
      // Until first ready the replica is simply not ready yet; afterwards it takes failureThreshold misses.
      if (!r.everReady || ++r.readinessFailures >= readiness.failureThreshold) host.setReady(r, false);
    }
    // A starting replica is probed every 20 ms for its first 2 s (most apps are up by then), then every 100 ms.
    const startupMs = Date.now() - r.startedAt < 2000 ? Math.min(20, host.startupProbeMs) : host.startupProbeMs;
    host.after(r, r.everReady ? readiness.periodSeconds * 1000 : startupMs, () => void probeReadiness());
  };
  const liveness = r.spec.liveness;
  const probeLiveness = async () => {
    if (!supervising() || !liveness) return;
    if (r.everReady) {
      const res = await host.probe(r, liveness);
      if (!supervising()) return;
      if (res.ok) r.livenessFailures = 0;
      else if (++r.livenessFailures >= liveness.failureThreshold) {
        r.lastExit = `liveness probe failed ${r.livenessFailures} times: ${res.message}`;
        host.log.warn({ env: r.env, app: r.app, replica: r.id, reason: res.message }, 'liveness failed');
        signalGroup(r.pid, 'SIGKILL');
        return;
      }
    }
    host.after(r, liveness.periodSeconds * 1000, () => void probeLiveness());
  };
  host.after(r, delayMs, () => void probeReadiness());
  if (liveness) host.after(r, delayMs + (liveness.initialDelaySeconds ?? 0) * 1000, () => void probeLiveness());
}
