import { describe, expect, it } from 'vitest';
import type { DesiredApp, DesiredEnvironment } from '../core/model.js';
import { templateHash } from '../targets/local/spec-hash.js';
import type { LiveApp } from '../targets/target.js';
import { formatPlan, hasChanges, planEnvironment, specKey, shownVersion } from './plan.js';

const app = (name: string, over: Partial<DesiredApp> = {}): DesiredApp => ({
  name,
  env: 'dev',
  version: '1.0.0',
  artifact: { path: `releases/${name}-1.0.0`, digest: 'd1' },
  command: ['node', 'server.js'],
  vars: { GREETING: 'hi' },
  replicas: 2,
  port: 8080,
  dependsOn: [],
  progressDeadlineSeconds: 60,
  terminationGracePeriodSeconds: 30,
  source: { file: 'apps/x.yaml', line: 1, col: 1 },
  ...over,
});

const env = (...apps: DesiredApp[]): DesiredEnvironment => ({ name: 'dev', target: { local: {} }, apps, source: { file: 'e.yaml', line: 1, col: 1 } });

const live = (spec: DesiredApp, over: Partial<LiveApp> = {}): LiveApp => ({
  name: spec.name,
  spec,
  template: templateHash(spec),
  version: spec.version,
  revision: 'r0',
  health: 'Healthy',
  message: '',
  replicas: { desired: spec.replicas, ready: spec.replicas, total: spec.replicas, updated: spec.replicas },
  instances: [],
  intact: true,
  ...over,
});

const plan = (desired: DesiredEnvironment, l: LiveApp[], inventory: string[] = l.map((a) => a.name), failures: any[] = []) =>
  planEnvironment({ desired, revision: 'abc1234def', live: l, inventory, failures, templateOf: templateHash });

describe('planEnvironment', () => {
  it('creates apps that are not running', () => {
    const p = plan(env(app('web')), []);
    expect(p.steps.map((s) => [s.app, s.action])).toEqual([['web', 'create']]);
  });

  it('compares an app known only from adopted live objects (taken over from another engine), even with the same template', () => {
    const p = plan(env(app('web')), [live(app('web'), { adopted: 'taken over: …' })]);
    expect(p.steps[0]).toMatchObject({ action: 'update', reason: 'taken over from live objects; comparing them with desired', changes: [] });
  });

  it('leaves alone what has not drifted', () => {
    const p = plan(env(app('web')), [live(app('web'))]);
    expect(p.steps[0].action).toBe('none');
    expect(hasChanges(p)).toBe(false);
  });

  it('updates when the template changes and names the fields', () => {
    const p = plan(env(app('web', { version: '1.1.0', vars: { GREETING: 'hello' } })), [live(app('web'))]);
    expect(p.steps[0]).toMatchObject({ action: 'update', from: '1.0.0', to: '1.1.0' });
    expect(p.steps[0].changes.map((c) => c.path)).toEqual(['vars.GREETING', 'version']);
  });

  it('rolls out changed artifact content under the same version', () => {
    const p = plan(env(app('web', { artifact: { path: 'releases/web-1.0.0', digest: 'd2' } })), [live(app('web'))]);
    expect(p.steps[0].action).toBe('update');
  });

  it('scales without new processes when only replicas change', () => {
    const p = plan(env(app('web', { replicas: 3 })), [live(app('web'))]);
    expect(p.steps[0]).toMatchObject({ action: 'scale', reason: 'changed: replicas' });
  });

  it('restores a release whose files were modified', () => {
    const p = plan(env(app('web')), [live(app('web'), { intact: false })]);
    expect(p.steps[0].action).toBe('update');
  });

  it('prunes only what the inventory recorded', () => {
    const p = plan(env(app('web')), [live(app('web')), live(app('old')), live(app('stranger'))], ['web', 'old']);
    expect(p.steps.filter((s) => s.action === 'delete').map((s) => s.app)).toEqual(['old']);
  });

  it('does not retry a spec that failed, until it changes or a sync is forced', () => {
    const desired = app('web', { version: '2.0.0' });
    const failures = [{ app: 'web', specHash: specKey(templateHash, desired), revision: 'bad0000', message: 'never ready' }];
    const blocked = plan(env(desired), [live(app('web'))], ['web'], failures);
    expect(blocked.steps[0]).toMatchObject({ action: 'blocked' });
    expect(blocked.steps[0].reason).toContain('keelson sync --env dev --app web');
    expect(hasChanges(blocked)).toBe(false);
    const fixed = plan(env(app('web', { version: '2.0.1' })), [live(app('web'))], ['web'], failures);
    expect(fixed.steps[0].action).toBe('update');
    const forced = planEnvironment({ desired: env(desired), revision: 'x', live: [live(app('web'))], inventory: ['web'], failures, templateOf: templateHash, force: new Set(['web']) });
    expect(forced.steps[0].action).toBe('update');
  });

  it('does not retry a failed first deploy, left running or never started, until a sync retries it', () => {
    const desired = app('web');
    const failures = [{ app: 'web', specHash: specKey(templateHash, desired), revision: 'bad0000', message: 'did not become ready\nlast log lines' }];
    const running = plan(env(desired), [live(desired, { health: 'Degraded' })], ['web'], failures);
    expect(running.steps[0]).toMatchObject({ action: 'blocked', from: '1.0.0', to: '1.0.0' });
    expect(running.steps[0].reason).toBe('this spec failed at bad0000 (did not become ready); commit a fix or run `keelson sync --env dev --app web` to retry');
    expect(plan(env(desired), [], ['web'], failures).steps[0].action).toBe('blocked');
    expect(hasChanges(running)).toBe(false);
    const retry = planEnvironment({ desired: env(desired), revision: 'x', live: [live(desired)], inventory: ['web'], failures, templateOf: templateHash, force: new Set(['web']) });
    expect(retry.steps[0]).toMatchObject({ action: 'update', reason: 'retrying the rollout that failed at bad0000', changes: [] });
    const fixed = plan(env(app('web', { version: '1.0.1' })), [live(desired)], ['web'], failures);
    expect(fixed.steps[0].action).toBe('update');
  });

  it('says why an app waits for prune confirmation, and applies it only when the prune is confirmed', () => {
    const waiting = live(app('web'), { outOfSync: 'waiting for prune confirmation: ConfigMap/ns/x', pendingPrune: ['ConfigMap/ns/x'] });
    expect(plan(env(app('web')), [waiting]).steps[0]).toMatchObject({ action: 'none', reason: 'waiting for prune confirmation: ConfigMap/ns/x' });
    const confirmed = planEnvironment({ desired: env(app('web')), revision: 'x', live: [waiting], inventory: ['web'], failures: [], templateOf: templateHash, force: new Set(['web']), confirmPrune: new Set(['web']) });
    expect(confirmed.steps[0]).toMatchObject({ action: 'update', reason: 'prune confirmed: ConfigMap/ns/x' });
  });

  it('prints one line per step with the changed fields', () => {
    const p = plan(env(app('web', { version: '1.1.0' })), [live(app('web')), live(app('old'))]);
    expect(formatPlan(p)).toMatchInlineSnapshot(`
      "environment dev at abc1234def
        update  web 1.0.0 → 1.1.0  (changed: version)
            version: "1.0.0" → "1.1.0"
        delete  old 1.0.0  (no longer declared in the environment)"
    `);
  });
});

describe('versions as shown', () => {
  it('a manifests app without a declared version shows its short revision', () => {
    expect(shownVersion('', '0123456789abcdef')).toBe('0123456');
    expect(shownVersion('1.2.0', '0123456789abcdef')).toBe('1.2.0');
  });
});
