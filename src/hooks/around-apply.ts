/**
 * Hooks around one app's apply: preSync (a failure stops the sync, nothing changes live), postSync (a failure rolls
 * the app back to the release it ran before and reports Failed), syncFailed (after any failure) and preDelete.
 * The engine calls `applyWithHooks` and `runPreDelete`; everything else about hooks lives here.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { HookPhase, HookSet } from '../core/delivery.js';
import type { DesiredApp } from '../core/model.js';
import { errorMessage } from '../core/errors.js';
import type { Store } from '../store/store.js';
import type { ApplyOutcome, LiveApp, Target } from '../targets/target.js';
import { hookVars, runExec, runPhase, type HookContext, type HookDeps } from './runner.js';

export interface SyncHookDeps extends HookDeps {
  target: Target;
  store: Store;
  /** The checkout directory of a revision (to re-apply the previous release). */
  checkout: (revision: string) => Promise<string>;
  /** Masks secret values in text the hooks' output may carry, before it is logged (the engine's SecretMask). */
  mask?: (text: string) => string;
}

export interface HookedApply {
  app: DesiredApp;
  hooks: HookSet | undefined;
  revision: string;
  checkoutDir: string;
  apply: () => Promise<ApplyOutcome>;
}

const hooksKey = (env: string, app: string) => `hooks/${env}/${app}`;

async function liveOf(target: Target, env: string, app: string): Promise<LiveApp | undefined> {
  return (await target.observe(env).catch(() => [])).find((a) => a.name === app);
}

export async function applyWithHooks(d: SyncHookDeps, h: HookedApply): Promise<ApplyOutcome> {
  const { app, hooks } = h;
  remember(d.store, app, hooks);
  if (!hooks) return h.apply();
  d = onTarget(d, app, h.checkoutDir);
  const before = await liveOf(d.target, app.env, app.name);
  const ctx = (phase: HookPhase, cwd: string, extra: Partial<HookContext> = {}): HookContext => ({
    phase,
    env: app.env,
    app: app.name,
    revision: h.revision,
    version: app.version,
    previousVersion: before?.version,
    previousRevision: before?.revision,
    cwd,
    vars: app.vars,
    port: app.port,
    ...extra,
  });
  // Before the rollout the new release is not in place yet: a path artifact runs from its checkout directory.
  const artifactDir = app.artifact.path ? resolve(h.checkoutDir, app.artifact.path) : undefined;
  const preCwd = (artifactDir && existsSync(artifactDir) ? artifactDir : before?.releaseDir) ?? d.stateDir;

  const failed = async (message: string, cwd: string): Promise<void> => {
    const r = await runPhase(hooks.syncFailed, ctx('syncFailed', cwd, { result: 'Failed', message }), d);
    if (!r.ok) d.log.warn({ env: app.env, app: app.name, err: d.mask ? d.mask(r.message) : r.message }, 'syncFailed hook failed');
  };

  const pre = await runPhase(hooks.preSync, ctx('preSync', preCwd), d);
  if (!pre.ok) {
    const message = `${pre.message}; nothing was changed`;
    await failed(message, preCwd);
    // Nothing changed live: like after a rollback, what ran before keeps running and is not recorded anew.
    return { ok: false, message, rolledBack: true, logTail: [] };
  }

  const outcome = await h.apply();
  const after = await liveOf(d.target, app.env, app.name);
  const postCwd = after?.releaseDir ?? preCwd;
  if (!outcome.ok) {
    // Interrupted by the engine stopping: nothing failed, the next engine resumes the rollout.
    if (!outcome.interrupted) await failed(outcome.message, postCwd);
    return outcome;
  }
  const post = await runPhase(hooks.postSync, ctx('postSync', postCwd, { result: 'Succeeded', releaseDir: after?.releaseDir }), d);
  if (post.ok) return post.steps.length ? { ...outcome, message: `${outcome.message}; ${post.message}` } : outcome;

  let message = post.message;
  let rolledBack = false;
  if (before && (before.version !== app.version || before.template !== d.target.templateOf(app))) {
    try {
      const checkoutDir = await d.checkout(before.revision);
      const back = await d.target.apply(before.spec, { revision: before.revision, checkoutDir });
      if (back.ok) {
        rolledBack = true;
        message = `${message}; rolled back to ${before.version} (${before.revision.slice(0, 7)})`;
        d.bus.publish({ type: 'app.rolledBack', env: app.env, app: app.name, revision: h.revision, message });
      } else message = `${message}; rollback to ${before.version} failed too: ${back.message}`;
    } catch (err) {
      message = `${message}; rollback to ${before.version} failed: ${errorMessage(err)}`;
    }
  } else message = `${message}; no previous release to roll back to`;
  await failed(message, (await liveOf(d.target, app.env, app.name))?.releaseDir ?? postCwd);
  return { ok: false, message, rolledBack, logTail: [] };
}

/** Runs the preDelete hooks recorded when the app was last applied; throws when one fails (the app keeps running). */
export async function runPreDelete(d: SyncHookDeps, env: string, app: string, revision: string): Promise<void> {
  const raw = d.store.getKv(hooksKey(env, app));
  const hooks = raw ? (JSON.parse(raw) as HookSet) : undefined;
  if (!hooks?.preDelete?.length) return;
  const live = await liveOf(d.target, env, app);
  d = onTarget(d, live?.spec, undefined);
  const r = await runPhase(
    hooks.preDelete,
    { phase: 'preDelete', env, app, revision, version: live?.version ?? '', cwd: live?.releaseDir ?? d.stateDir, vars: live?.spec.vars ?? {}, port: live?.spec.port },
    d,
  );
  if (!r.ok) throw new Error(r.message);
}

/** `exec` steps run where the app runs when the target says how (Kubernetes: as Jobs from the app's pod template). */
function onTarget(d: SyncHookDeps, spec: DesiredApp | undefined, checkoutDir: string | undefined): SyncHookDeps {
  const target = d.target;
  if (!target.hookExec) return d;
  return {
    ...d,
    exec: async (argv, c, timeoutMs, signal) =>
      (await target.hookExec!({ env: c.env, app: c.app, spec, checkoutDir, argv, cwd: c.cwd, vars: { ...c.vars, ...hookVars(c) }, timeoutMs, signal })) ?? runExec(argv, c, timeoutMs, signal),
  };
}

export function forgetHooks(store: Store, env: string, app: string): void {
  store.db.prepare('delete from kv where key = ?').run(hooksKey(env, app));
}

function remember(store: Store, app: DesiredApp, hooks: HookSet | undefined): void {
  if (hooks?.preDelete?.length) store.setKv(hooksKey(app.env, app.name), JSON.stringify({ preDelete: hooks.preDelete }));
  else forgetHooks(store, app.env, app.name);
}
