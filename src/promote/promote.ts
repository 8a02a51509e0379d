/**
 * Promotion: one commit that sets a target environment's app versions to those of a source environment.
 * `planPromotion` is pure (what would change); `writePromotion` edits the target's Environment document and commits.
 */
import type { DesiredEnvironment } from '../core/model.js';
import { ExitError } from '../core/errors.js';
import type { WorkingCopy } from '../opsrepo/working-copy.js';
import { parseFile, setStrings } from '../opsrepo/yaml-edit.js';

export interface PromotionChange {
  app: string;
  from: string;
  to: string;
}

export interface PromotionPlan {
  from: string;
  to: string;
  changes: PromotionChange[];
  /** Apps already at the source's version. */
  unchanged: string[];
  /** Apps that cannot be promoted, with the reason. */
  skipped: { app: string; reason: string }[];
}

/** What promoting `apps` (or every app the source runs) from `source` to `target` would change. */
export function planPromotion(source: DesiredEnvironment, target: DesiredEnvironment, apps: string[] | 'all'): PromotionPlan {
  const inSource = new Map(source.apps.map((a) => [a.name, a]));
  const inTarget = new Map(target.apps.map((a) => [a.name, a]));
  const wanted = apps === 'all' ? [...inSource.keys()].sort() : apps;
  const plan: PromotionPlan = { from: source.name, to: target.name, changes: [], unchanged: [], skipped: [] };
  for (const app of wanted) {
    const s = inSource.get(app);
    if (!s) throw new ExitError(1, `environment "${source.name}" does not run app "${app}" (it runs: ${[...inSource.keys()].join(', ') || 'nothing'})`);
    const t = inTarget.get(app);
    if (!t) {
      plan.skipped.push({ app, reason: `not listed in environment "${target.name}"; add it to spec.apps there first` });
      continue;
    }
    if (s.version === t.version) plan.unchanged.push(app);
    else plan.changes.push({ app, from: t.version, to: s.version });
  }
  return plan;
}

export function formatPromotion(p: PromotionPlan): string {
  const lines = [`promote ${p.from} → ${p.to}:`];
  for (const c of p.changes) lines.push(`  ~ ${c.app}: ${c.from} → ${c.to}`);
  for (const a of p.unchanged) lines.push(`  = ${a}: already at the same version`);
  for (const s of p.skipped) lines.push(`  ! ${s.app}: ${s.reason}`);
  if (p.changes.length === 0) lines.push('  nothing to promote');
  return lines.join('\n');
}

export function promotionMessage(p: PromotionPlan): string {
  const subject = `Promote ${p.changes.map((c) => `${c.app} ${c.to}`).join(', ')} from ${p.from} to ${p.to}`;
  const body = p.changes.map((c) => `${c.app}: ${c.from} -> ${c.to}`).join('\n');
  return `${subject}\n\n${body}\n\nKeelson-Promote: ${p.from} -> ${p.to}\n`;
}

/** Edits the target environment's document (comments and layout kept) and commits; returns the commit sha. */
export async function writePromotion(wc: WorkingCopy, p: PromotionPlan, o: { branch?: string; push?: boolean } = {}): Promise<string> {
  const loc = await wc.locateEnvironment(p.to);
  const file = parseFile(await wc.read(loc.file));
  const text = setStrings(
    file,
    loc.index,
    p.changes.map((c) => ({ path: ['spec', 'apps', c.app, 'version'], value: c.to })),
  );
  return wc.commit([{ path: loc.file, content: text }], { message: promotionMessage(p), branch: o.branch, push: o.push });
}
