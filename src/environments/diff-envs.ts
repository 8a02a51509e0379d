/** How two environments differ (versions, replicas, ports, config): pure, from the rendered desired state. */
import type { DesiredApp, DesiredEnvironment } from '../core/model.js';

export type EnvDifference =
  | { app: string; field: 'presence'; a: boolean; b: boolean }
  | { app: string; field: 'version' | 'replicas' | 'port' | 'command' | 'artifact'; a: string; b: string }
  | { app: string; field: 'env'; key: string; a: string | null; b: string | null };

export interface EnvDiff {
  a: string;
  b: string;
  differences: EnvDifference[];
  /** Apps both run identically (same version, replicas and config). */
  identical: string[];
}

/** Ports and host names are expected to differ between environments; they are listed but do not make apps differ. */
const placement = new Set(['port']);

export function diffEnvironments(a: DesiredEnvironment, b: DesiredEnvironment): EnvDiff {
  const byA = new Map(a.apps.map((x) => [x.name, x]));
  const byB = new Map(b.apps.map((x) => [x.name, x]));
  const names = [...new Set([...byA.keys(), ...byB.keys()])].sort();
  const differences: EnvDifference[] = [];
  const identical: string[] = [];
  for (const app of names) {
    const x = byA.get(app);
    const y = byB.get(app);
    if (!x || !y) {
      differences.push({ app, field: 'presence', a: !!x, b: !!y });
      continue;
    }
    const own = compareApp(x, y);
    differences.push(...own);
    if (own.every((d) => placement.has(d.field))) identical.push(app);
  }
  return { a: a.name, b: b.name, differences, identical };
}

function compareApp(x: DesiredApp, y: DesiredApp): EnvDifference[] {
  const out: EnvDifference[] = [];
  const app = x.name;
  const scalar = (field: 'version' | 'replicas' | 'port' | 'command' | 'artifact', p: string, q: string) => {
    if (p !== q) out.push({ app, field, a: p, b: q });
  };
  scalar('version', x.version, y.version);
  scalar('replicas', String(x.replicas), String(y.replicas));
  scalar('port', x.port === undefined ? '-' : String(x.port), y.port === undefined ? '-' : String(y.port));
  scalar('command', JSON.stringify(x.command), JSON.stringify(y.command));
  const art = (d: DesiredApp) => d.artifact.url ?? d.artifact.path ?? '-';
  if (x.version === y.version) scalar('artifact', art(x), art(y));
  for (const key of [...new Set([...Object.keys(x.vars), ...Object.keys(y.vars)])].sort()) {
    const p = x.vars[key] ?? null;
    const q = y.vars[key] ?? null;
    if (p !== q) out.push({ app, field: 'env', key, a: p, b: q });
  }
  return out;
}

export function formatEnvDiff(d: EnvDiff): string {
  if (d.differences.length === 0) return `environments ${d.a} and ${d.b} are identical (${d.identical.length} app(s))`;
  const rows = [['APP', 'FIELD', d.a.toUpperCase(), d.b.toUpperCase()]];
  const show = (v: string | boolean | null) => (v === null ? '(unset)' : v === true ? 'present' : v === false ? 'absent' : v);
  for (const x of d.differences) {
    rows.push([x.app, x.field === 'env' ? `env ${x.key}` : x.field, show(x.a), show(x.b)]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const table = rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
  const same = d.identical.length ? `\nidentical apart from ports: ${d.identical.join(', ')}` : '';
  return table + same;
}

/** True when the environments run the same apps with the same versions, replicas and config (ports aside). */
export function sameApartFromPlacement(d: EnvDiff): boolean {
  return d.differences.every((x) => placement.has(x.field));
}
