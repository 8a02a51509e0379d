import type { DesiredApp, DesiredEnvironment } from '../core/model.js';
import { diffSpecs, formatChange, type FieldChange } from '../diff/diff.js';
import type { LiveApp } from '../targets/target.js';

/**
 * - create: not running yet; update: new processes needed (template changed or release modified);
 * - scale: only replicas or port changed; delete: the inventory has it, desired no longer does (prune);
 * - none: live equals desired; blocked: this exact spec failed before (live or not), or a dependency is missing.
 */
export type StepAction = 'create' | 'update' | 'scale' | 'delete' | 'none' | 'blocked';

export interface PlanStep {
  app: string;
  action: StepAction;
  /** Live and desired versions. */
  from?: string;
  to?: string;
  changes: FieldChange[];
  reason: string;
  dependsOn: string[];
  /** Targets that manage objects (Kubernetes): the server-side dry-run difference per object, for `keelson diff`. */
  objects?: { key: string; action: string; changes: FieldChange[] }[];
}

export interface Plan {
  env: string;
  revision: string;
  steps: PlanStep[];
}

export interface PlanInput {
  desired: DesiredEnvironment;
  revision: string;
  live: LiveApp[];
  /** App names the last applied revisions deployed to this environment. */
  inventory: string[];
  /** Specs whose rollout failed: not retried automatically until desired changes. */
  failures: { app: string; specHash: string; revision: string; message: string }[];
  templateOf: (app: DesiredApp) => string;
  /** Apps whose auto-sync should proceed even after a failure (a manual sync). */
  force?: Set<string>;
  /** Apps whose objects waiting for prune confirmation may now be deleted (`keelson sync --confirm-prune`). */
  confirmPrune?: Set<string>;
}

/** Identity of a desired app spec for failure memory: template plus replicas and port. */
export function specKey(templateOf: (a: DesiredApp) => string, a: DesiredApp): string {
  return `${templateOf(a)}/${a.replicas}/${a.port ?? ''}`;
}

/** Pure: what to do to make the live environment equal the desired one, in dependency order, prunes last. */
export function planEnvironment(input: PlanInput): Plan {
  const live = new Map(input.live.map((a) => [a.name, a]));
  const desiredNames = new Set(input.desired.apps.map((a) => a.name));
  const steps: PlanStep[] = [];
  for (const app of input.desired.apps) {
    const l = live.get(app.name);
    let { action, reason, changes } = compare(app, l, input.templateOf);
    if (action === 'none' && l?.pendingPrune?.length && input.confirmPrune?.has(app.name)) {
      action = 'update';
      reason = `prune confirmed: ${l.pendingPrune.join(', ')}`;
    }
    // A failed spec is not retried automatically, whether it was rolled back, left running (a first deploy has
    // nothing to roll back to) or never started; a manual sync retries it, even when it is the live one.
    const failed = input.failures.find((f) => f.app === app.name && f.specHash === specKey(input.templateOf, app));
    if (failed && !input.force?.has(app.name)) {
      action = 'blocked';
      reason = `this spec failed at ${failed.revision.slice(0, 7)} (${failed.message.split('\n')[0]}); commit a fix or run \`keelson sync --env ${input.desired.name} --app ${app.name}\` to retry`;
    } else if (failed && action === 'none') {
      action = 'update';
      reason = `retrying the rollout that failed at ${failed.revision.slice(0, 7)}`;
    }
    steps.push({ app: app.name, ...(l ? { from: shownVersion(l.version, l.revision) } : {}), to: shownVersion(app.version, input.revision), dependsOn: app.dependsOn, action, changes: action === 'none' ? [] : changes, reason });
  }
  for (const name of input.inventory) {
    if (desiredNames.has(name)) continue;
    const l = live.get(name);
    steps.push({ app: name, action: 'delete', from: l ? shownVersion(l.version, l.revision) : undefined, changes: [], reason: 'no longer declared in the environment', dependsOn: [] });
  }
  return { env: input.desired.name, revision: input.revision, steps };
}

/** An app's version as shown: the declared one, else (a manifests app that declares none) its short revision. */
export function shownVersion(version: string, revision: string | undefined): string {
  return version || (revision ?? '').slice(0, 7);
}

/** What one app needs for live to equal its desired spec: to start, new processes, a scale, or nothing. */
function compare(app: DesiredApp, l: LiveApp | undefined, templateOf: (a: DesiredApp) => string): { action: StepAction; reason: string; changes: FieldChange[] } {
  if (!l) return { action: 'create', reason: 'not running', changes: diffSpecs(undefined, app) };
  // Known from its live objects only (taken over): the spec that made them is unknown, so the target compares them.
  if (l.adopted) return { action: 'update', reason: 'taken over from live objects; comparing them with desired', changes: [] };
  const changes = diffSpecs(l.spec, app);
  if (l.template !== templateOf(app)) {
    return { action: 'update', reason: changes.length ? `changed: ${changes.map((c) => c.path).join(', ')}` : 'artifact content changed', changes };
  }
  // The same template as live, so the interrupted rollout is no longer desired: the apply aborts it.
  if (l.unfinishedSync) return { action: 'update', reason: l.unfinishedSync, changes };
  if (l.interruptedRollout) return { action: 'update', reason: `the rollout to ${l.interruptedRollout} an engine restart interrupted is no longer desired; aborting it`, changes };
  if (!l.intact) return { action: 'update', reason: 'files of the live release were modified; restoring it', changes };
  if (l.spec.replicas !== app.replicas || l.spec.port !== app.port) return { action: 'scale', reason: `changed: ${changes.map((c) => c.path).join(', ')}`, changes };
  return { action: 'none', reason: l.outOfSync || 'live equals desired', changes };
}

export function hasChanges(plan: Plan): boolean {
  return plan.steps.some((s) => s.action !== 'none' && s.action !== 'blocked');
}

/** One line per step, as `keelson diff` prints it. */
export function formatPlan(plan: Plan): string {
  const lines = [`environment ${plan.env} at ${plan.revision.slice(0, 12)}`];
  for (const s of plan.steps) {
    const versions = s.from && s.to && s.from !== s.to ? ` ${s.from} → ${s.to}` : s.to ? ` ${s.to}` : s.from ? ` ${s.from}` : '';
    lines.push(`  ${s.action.padEnd(7)} ${s.app}${versions}  (${s.reason})`);
    if (s.action !== 'none' && s.action !== 'create') {
      for (const c of s.changes) lines.push(`      ${formatChange(c)}`);
    }
    for (const o of s.objects ?? []) {
      if (o.action === 'none') continue;
      lines.push(`      ${o.action} ${o.key}`);
      if (o.action === 'update') for (const c of o.changes) lines.push(`          ${c.path}: ${JSON.stringify(c.live) ?? '(none)'} → ${JSON.stringify(c.desired) ?? '(none)'}`);
    }
  }
  return lines.join('\n');
}
