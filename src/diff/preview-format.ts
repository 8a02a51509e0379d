/**
 * `keelson diff --revision` output: the plans a revision would make, as text for a terminal or as Markdown to post on
 * a pull request (one section per environment with changes, object-level changes, a summary line; long sections
 * collapsed in `<details>`). Secret values are never printed: a secret's change shows as "changed" only. Pure.
 */
import type { Plan, PlanStep } from '../plan/plan.js';
import { INVALID_FIELD } from '../targets/target.js';

export interface PreviewLike {
  revision: string;
  commit: { message: string };
  base: string | null;
  issues: string[];
  environments: Plan[];
}

type ObjectChange = NonNullable<PlanStep['objects']>[number];

/** Steps that change something: the app, or one of its objects. */
function changedSteps(plan: Plan): PlanStep[] {
  return plan.steps.filter((s) => (s.action !== 'none' && s.action !== 'blocked') || (s.objects ?? []).some((o) => o.action !== 'none'));
}

/** Whether the revision changes anything live (or cannot be rendered): what `--exit-code` reports. */
export function previewHasChanges(p: PreviewLike): boolean {
  return p.issues.length > 0 || p.environments.some((e) => changedSteps(e).length > 0);
}

const isSecretPath = (path: string) => path === 'secrets' || path.startsWith('secrets.');
const isSecretKey = (key: string) => key.startsWith('Secret/');
const isSecretData = (path: string) => path === '' || /^(data|stringData)(\.|$)/.test(path);

function show(v: unknown): string {
  if (v === undefined) return '(none)';
  const s = JSON.stringify(v);
  return s.length > 120 ? `${s.slice(0, 117)}…` : s;
}

/** One changed field; a secret's values are never shown. */
function fieldLine(path: string, live: unknown, desired: unknown, secret: boolean): string {
  if (secret) return `${path || '(value)'}: changed`;
  return `${path}: ${show(live)} → ${show(desired)}`;
}

function versions(s: PlanStep): string {
  return s.from && s.to && s.from !== s.to ? `${s.from} → ${s.to}` : (s.to ?? s.from ?? '');
}

/** Lines describing one step: its field changes (app level) and its objects' changes. */
function stepDetails(s: PlanStep): string[] {
  const out: string[] = [];
  if (s.action !== 'none' && s.action !== 'create' && !s.objects?.length) {
    for (const c of s.changes) out.push(fieldLine(c.path, c.live, c.desired, isSecretPath(c.path)));
  }
  for (const o of s.objects ?? []) {
    if (o.action === 'none') continue;
    out.push(`${o.action} ${o.key}`);
    for (const c of o.changes) {
      // A field the API server refused (a strict dry-run, kubernetes/diff.ts), on a new object too.
      if (c.path === INVALID_FIELD) out.push(`    invalid: ${String(c.desired)}`);
      else if (o.action === 'update') out.push(`    ${objectField(o, c)}`);
    }
  }
  return out;
}

function objectField(o: ObjectChange, c: ObjectChange['changes'][number]): string {
  return fieldLine(c.path, c.live, c.desired, isSecretKey(o.key) && isSecretData(c.path));
}

function summary(p: PreviewLike): string {
  const envs = p.environments.filter((e) => changedSteps(e).length > 0);
  const apps = envs.reduce((n, e) => n + changedSteps(e).length, 0);
  const objects = envs.reduce((n, e) => n + changedSteps(e).reduce((m, s) => m + (s.objects ?? []).filter((o) => o.action !== 'none').length, 0), 0);
  if (!envs.length) return `no changes: live already equals ${p.revision.slice(0, 7)} in ${p.environments.length} environment${p.environments.length === 1 ? '' : 's'}`;
  const what = [`${apps} app${apps === 1 ? '' : 's'}`, objects ? `${objects} object${objects === 1 ? '' : 's'}` : ''].filter(Boolean).join(', ');
  const unchanged = p.environments.length - envs.length;
  return `${what} change in ${envs.length} environment${envs.length === 1 ? '' : 's'}${unchanged ? ` (${unchanged} unchanged)` : ''}`;
}

function title(p: PreviewLike): string {
  return `${p.revision.slice(0, 7)} "${p.commit.message}" against live${p.base ? ` (running ${p.base.slice(0, 7)})` : ''}`;
}

export function formatPreviewText(p: PreviewLike): string {
  const lines = [`preview of ${title(p)}`];
  if (p.issues.length) {
    lines.push(`the revision does not render; a sync would keep running what runs now:`, ...p.issues.map((i) => `  ${i}`));
    return lines.join('\n');
  }
  for (const plan of p.environments) {
    const steps = changedSteps(plan);
    if (!steps.length) continue;
    lines.push('', `environment ${plan.env}`);
    for (const s of steps) {
      lines.push(`  ${s.action.padEnd(7)} ${s.app}${versions(s) ? ` ${versions(s)}` : ''}  (${s.reason})`);
      for (const d of stepDetails(s)) lines.push(`      ${d}`);
    }
  }
  lines.push('', summary(p));
  return lines.join('\n');
}

/** Sections longer than this many lines are collapsed. */
const COLLAPSE_AT = 15;

export function formatPreviewMarkdown(p: PreviewLike): string {
  const out = [`### Keelson preview of \`${p.revision.slice(0, 7)}\``, '', `${escapeMd(p.commit.message)} — against live${p.base ? ` (running \`${p.base.slice(0, 7)}\`)` : ''}`, ''];
  if (p.issues.length) {
    out.push(':x: **The revision does not render**; a sync would keep running what runs now:', '', '```', ...p.issues, '```');
    return out.join('\n');
  }
  for (const plan of p.environments) {
    const steps = changedSteps(plan);
    if (!steps.length) continue;
    out.push(`#### Environment \`${plan.env}\``, '', '| App | Change | Version | Why |', '| --- | --- | --- | --- |');
    for (const s of steps) out.push(`| \`${s.app}\` | ${s.action} | ${escapeMd(versions(s)) || '—'} | ${escapeMd(s.reason)} |`);
    const details = steps.flatMap((s) => {
      const d = stepDetails(s);
      return d.length ? [`${s.app}:`, ...d.map((l) => `  ${l}`)] : [];
    });
    if (details.length) {
      const block = ['```diff', ...details.map(diffLine), '```'];
      if (details.length > COLLAPSE_AT) out.push('', `<details><summary>${details.length} lines of changes</summary>`, '', ...block, '', '</details>');
      else out.push('', ...block);
    }
    out.push('');
  }
  out.push(`**Summary:** ${summary(p)}`);
  return out.join('\n');
}

/** Marks creates and deletes for GitHub's diff highlighting. */
function diffLine(l: string): string {
  const t = l.trimStart();
  if (t.startsWith('create ')) return `+ ${l}`;
  if (t.startsWith('delete ')) return `- ${l}`;
  return `  ${l}`;
}

function escapeMd(s: string): string {
  return s.replace(/[|\\`*_<>]/g, (c) => `\\${c}`).replace(/\n/g, ' ');
}
