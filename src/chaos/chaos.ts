/**
 * Chaos: kills random replicas of an environment through a running engine's view of it, while probing every app
 * through the proxy, and reports kills, time to detect, time to ready again, availability, restarts and rollbacks.
 * Never kills all ready replicas of an app, never kills while any app of the environment is unhealthy, and refuses
 * a protected environment unless forced.
 */
import http from 'node:http';

export interface ChaosOptions {
  server: string;
  env: string;
  app?: string;
  durationMs: number;
  intervalMs: number;
  kill: number;
  dryRun: boolean;
  force: boolean;
  /** Probe period per app. Default 20 ms. */
  probeMs?: number;
  /** Headers for the engine API (a token). */
  headers?: Record<string, string>;
  /** Reads an engine API path as JSON (default: fetch from `server` with `headers`). */
  fetchJson?: (path: string) => Promise<unknown>;
  log?: (line: string) => void;
  random?: () => number;
}

interface Instance {
  id: string;
  pid: number;
  ready: boolean;
  restarts: number;
  state?: string;
}
interface AppView {
  name: string;
  health: string;
  port?: number | null;
  replicas: { desired: number; ready: number };
  instances: Instance[];
}
interface EnvView {
  name: string;
  protected?: boolean;
  apps: AppView[];
}

export interface KillRecord {
  at: string;
  app: string;
  replica: string;
  pid: number;
  dryRun: boolean;
  detectMs: number | null;
  recoverMs: number | null;
}

export interface ChaosReport {
  env: string;
  app: string | null;
  startedAt: string;
  durationMs: number;
  intervalMs: number;
  dryRun: boolean;
  kills: KillRecord[];
  skipped: { at: string; reason: string }[];
  probes: { total: number; ok: number; failed: number; availability: number | null; failures: Record<string, number> };
  detect: { medianMs: number | null; p95Ms: number | null };
  recovery: { medianMs: number | null; p95Ms: number | null; unrecovered: number };
  restarts: number;
  rollbacks: number;
}

export class ChaosRefused extends Error {}

async function getJson<T>(o: ChaosOptions, path: string): Promise<T> {
  if (o.fetchJson) return (await o.fetchJson(path)) as T;
  const res = await fetch(o.server + path, { headers: o.headers, signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

async function envView(o: ChaosOptions): Promise<EnvView> {
  const s = await getJson<{ environments: EnvView[] }>(o, `/api/v1/status?env=${encodeURIComponent(o.env)}`);
  const env = s.environments.find((e) => e.name === o.env);
  if (!env) throw new ChaosRefused(`unknown environment "${o.env}"`);
  return env;
}

export function percentile(values: number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** Probes one port over keep-alive connections until stopped: the availability a client sees through the proxy. */
function probeLoop(port: number, periodMs: number, tally: ChaosReport['probes']): { stop: () => Promise<void> } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
  let running = true;
  const one = () =>
    new Promise<void>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/', agent, timeout: 2000 }, (res) => {
        res.resume();
        res.on('end', () => {
          tally.total++;
          if (res.statusCode! < 500) tally.ok++;
          else {
            tally.failed++;
            tally.failures[`HTTP ${res.statusCode}`] = (tally.failures[`HTTP ${res.statusCode}`] ?? 0) + 1;
          }
          resolve();
        });
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (err: NodeJS.ErrnoException) => {
        tally.total++;
        tally.failed++;
        const k = err.code ?? err.message;
        tally.failures[k] = (tally.failures[k] ?? 0) + 1;
        resolve();
      });
    });
  const done = (async () => {
    while (running) {
      await one();
      await new Promise((r) => setTimeout(r, periodMs));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
      agent.destroy();
    },
  };
}

export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const log = o.log ?? (() => undefined);
  const random = o.random ?? Math.random;
  const first = await envView(o);
  if (first.protected && !o.force) throw new ChaosRefused(`environment "${o.env}" is protected; pass --force to run chaos there`);
  const inScope = (a: AppView) => !o.app || a.name === o.app;
  if (o.app && !first.apps.some((a) => a.name === o.app)) throw new ChaosRefused(`environment "${o.env}" has no app "${o.app}"`);
  const started = Date.now();
  const report: ChaosReport = {
    env: o.env,
    app: o.app ?? null,
    startedAt: new Date(started).toISOString(),
    durationMs: o.durationMs,
    intervalMs: o.intervalMs,
    dryRun: o.dryRun,
    kills: [],
    skipped: [],
    probes: { total: 0, ok: 0, failed: 0, availability: null, failures: {} },
    detect: { medianMs: null, p95Ms: null },
    recovery: { medianMs: null, p95Ms: null, unrecovered: 0 },
    restarts: 0,
    rollbacks: 0,
  };
  const restartsBefore = new Map(first.apps.filter(inScope).flatMap((a) => a.instances.map((i) => [`${a.name}/${i.id}`, i.restarts] as const)));
  const probes = first.apps.filter(inScope).filter((a) => a.port).map((a) => probeLoop(a.port!, o.probeMs ?? 20, report.probes));
  const pending: { rec: KillRecord; t: number }[] = [];
  let last = first;

  const observe = (env: EnvView) => {
    const now = Date.now();
    for (const p of [...pending]) {
      const app = env.apps.find((a) => a.name === p.rec.app);
      const inst = app?.instances.find((i) => i.id === p.rec.replica);
      const gone = !inst || inst.pid !== p.rec.pid || !inst.ready;
      if (p.rec.detectMs === null && gone) p.rec.detectMs = now - p.t;
      const back = app && inst && inst.pid !== p.rec.pid && inst.ready && app.replicas.ready >= app.replicas.desired;
      if (back) {
        p.rec.detectMs ??= now - p.t;
        p.rec.recoverMs = now - p.t;
        pending.splice(pending.indexOf(p), 1);
      }
    }
  };

  let nextKill = started;
  const end = started + o.durationMs;
  try {
    while (Date.now() < end || (pending.length > 0 && Date.now() < end + 30_000)) {
      last = await envView(o).catch(() => last);
      observe(last);
      if (Date.now() >= nextKill && Date.now() < end) {
        nextKill += o.intervalMs;
        const unhealthy = last.apps.filter((a) => a.health !== 'Healthy');
        if (unhealthy.length) {
          report.skipped.push({ at: new Date().toISOString(), reason: `environment degraded: ${unhealthy.map((a) => `${a.name} ${a.health}`).join(', ')}` });
          log(`skip: environment degraded (${unhealthy.map((a) => a.name).join(', ')})`);
        } else if (pending.length && !o.dryRun) {
          report.skipped.push({ at: new Date().toISOString(), reason: 'a killed replica is not ready again yet' });
        } else {
          // Candidates: ready replicas of apps that keep at least one other ready replica.
          const budget = new Map(last.apps.filter(inScope).map((a) => [a.name, a.instances.filter((i) => i.ready).length - 1]));
          const candidates = last.apps.filter(inScope).flatMap((a) => a.instances.filter((i) => i.ready).map((i) => ({ app: a.name, inst: i })));
          let killed = 0;
          while (killed < o.kill && candidates.length) {
            const [c] = candidates.splice(Math.floor(random() * candidates.length), 1);
            if ((budget.get(c.app) ?? 0) < 1) continue;
            budget.set(c.app, budget.get(c.app)! - 1);
            const rec: KillRecord = { at: new Date().toISOString(), app: c.app, replica: c.inst.id, pid: c.inst.pid, dryRun: o.dryRun, detectMs: null, recoverMs: null };
            report.kills.push(rec);
            killed++;
            log(`${o.dryRun ? 'would kill' : 'kill'} ${c.app} replica ${c.inst.id} (pid ${c.inst.pid})`);
            if (!o.dryRun) {
              try {
                process.kill(-c.inst.pid, 'SIGKILL');
              } catch {
                try {
                  process.kill(c.inst.pid, 'SIGKILL');
                } catch {
                  /* already gone */
                }
              }
              pending.push({ rec, t: Date.now() });
            }
          }
          if (killed === 0) report.skipped.push({ at: new Date().toISOString(), reason: 'no app has two ready replicas; never killing all of an app' });
        }
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await Promise.all(probes.map((p) => p.stop()));
  }
  const real = report.kills.filter((k) => !k.dryRun);
  const detects = real.map((k) => k.detectMs).filter((v): v is number => v !== null);
  const recovers = real.map((k) => k.recoverMs).filter((v): v is number => v !== null);
  report.detect = { medianMs: percentile(detects, 50), p95Ms: percentile(detects, 95) };
  report.recovery = { medianMs: percentile(recovers, 50), p95Ms: percentile(recovers, 95), unrecovered: real.length - recovers.length };
  report.probes.availability = report.probes.total ? report.probes.ok / report.probes.total : null;
  for (const a of last.apps.filter(inScope)) {
    for (const i of a.instances) report.restarts += Math.max(0, i.restarts - (restartsBefore.get(`${a.name}/${i.id}`) ?? 0));
  }
  for (const a of first.apps.filter(inScope)) {
    const ev = await getJson<{ events: { type: string; time: string }[] }>(o, `/api/v1/environments/${encodeURIComponent(o.env)}/apps/${encodeURIComponent(a.name)}/events`).catch(() => ({ events: [] }));
    report.rollbacks += ev.events.filter((e) => e.type === 'app.rolledBack' && Date.parse(e.time) >= started).length;
  }
  return report;
}

const ms = (v: number | null) => (v === null ? '-' : `${v} ms`);

export function chaosMarkdown(r: ChaosReport): string {
  const avail = r.probes.availability === null ? 'no probes (no app with a port)' : `${(r.probes.availability * 100).toFixed(3)} % (${r.probes.ok}/${r.probes.total})`;
  const lines = [
    `# Chaos report: ${r.env}${r.app ? `/${r.app}` : ''}${r.dryRun ? ' (dry run)' : ''}`,
    '',
    `Started ${r.startedAt}, ${r.durationMs / 1000}s, a kill every ${r.intervalMs / 1000}s.`,
    '',
    '| measure | value |',
    '| --- | --- |',
    `| kills | ${r.kills.length}${r.dryRun ? ' (none performed)' : ''} |`,
    `| availability through the proxy | ${avail} |`,
    `| time to detect (median / p95) | ${ms(r.detect.medianMs)} / ${ms(r.detect.p95Ms)} |`,
    `| time to ready again (median / p95) | ${ms(r.recovery.medianMs)} / ${ms(r.recovery.p95Ms)} |`,
    `| not ready again by the end | ${r.recovery.unrecovered} |`,
    `| restarts | ${r.restarts} |`,
    `| rollbacks triggered | ${r.rollbacks} |`,
    `| intervals skipped | ${r.skipped.length} |`,
  ];
  if (Object.keys(r.probes.failures).length) lines.push('', `Failed probes: ${Object.entries(r.probes.failures).map(([k, v]) => `${k} × ${v}`).join(', ')}`);
  if (r.kills.length) {
    lines.push('', '| time | app | replica | pid | detect | ready again |', '| --- | --- | --- | --- | --- | --- |');
    for (const k of r.kills) lines.push(`| ${k.at} | ${k.app} | ${k.replica} | ${k.pid} | ${ms(k.detectMs)} | ${ms(k.recoverMs)} |`);
  }
  if (r.skipped.length) {
    lines.push('', 'Skipped:');
    for (const s of r.skipped.slice(0, 20)) lines.push(`- ${s.at}: ${s.reason}`);
  }
  return lines.join('\n') + '\n';
}
