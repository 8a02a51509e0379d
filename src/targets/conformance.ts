/**
 * The behaviours every target shares, as one suite run against each of them through a real engine and a real git
 * repository: first apply creates; re-apply reports unchanged and writes nothing; changing one field reconfigures
 * only that app; removing an app prunes it; a kept object is skipped; drift is healed; a never-ready version rolls
 * back and reports Failed. A target that differs says why in `skips`.
 *
 *   describeTargetConformance(localFixture());   // in a *.int.test.ts file
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commitAll, gitInit, tempDir, waitFor, writeTree } from '../../test/helpers.js';
import { Engine } from '../engine/engine.js';
import { EventBus, type Stamped } from '../core/events.js';
import { silentLogger, type Logger } from '../log.js';
import { Store } from '../store/store.js';
import type { Target } from './target.js';

export interface AppVariant {
  version: string;
  greeting: string;
  /** A version whose replicas never become ready. */
  neverReady?: boolean;
  /** Also declare an object annotated to be kept when it is no longer declared. */
  withKept?: boolean;
}

export interface FixtureContext {
  env: string;
  store: Store;
  bus: EventBus;
  log: Logger;
  stateDir: string;
  requeue: (env: string) => void;
  specOf: (env: string) => ReturnType<Engine['targetSpecOf']>;
}

export interface ConformanceFixture {
  name: string;
  /** Why the suite cannot run here (no cluster, no Go); `CI` turns it into a failure instead of a skip. */
  unavailable?: () => string | undefined;
  /** The environment's `spec.target` as YAML flow text, e.g. `{ local: {} }`. */
  targetYaml(env: string): string;
  /** Files of the ops repository (paths relative to its root) declaring App `name` in this variant. */
  appFiles(name: string, v: AppVariant): Record<string, string>;
  createTarget(ctx: FixtureContext): Promise<Target>;
  /** Something that changes whenever the target writes anything for the app (pids, resource versions). */
  fingerprint(env: string, app: string): Promise<string>;
  /** Changes the live app behind Keelson's back. */
  drift(env: string, app: string): Promise<void>;
  /** The live app is as declared again (after `drift`). */
  healed(env: string, app: string): Promise<boolean>;
  /** Whether the kept object of `withKept` is still there. */
  keptExists?(env: string, app: string): Promise<boolean>;
  cleanup(env: string): Promise<void>;
  /** Behaviours this target does not share, each with the reason. */
  skips?: Partial<Record<'kept', string>>;
}

export function describeTargetConformance(f: ConformanceFixture): void {
  const why = f.unavailable?.();
  if (why && !process.env.CI) {
    describe.skip(`target conformance: ${f.name} (${why})`, () => {
      it('runs', () => undefined);
    });
    return;
  }
  describe(`target conformance: ${f.name}`, () => {
    if (why) {
      it('can run here', () => {
        throw new Error(`the ${f.name} conformance suite must run in CI: ${why}`);
      });
      return;
    }
    const tmp = tempDir(`keelson-conformance-${f.name}-`);
    const ops = join(tmp.dir, 'ops');
    const env = `conf-${f.name}-${process.pid.toString(36)}-${Date.now().toString(36)}`.slice(0, 40);
    const events: Stamped[] = [];
    let engine: Engine;
    let store: Store;
    let target: Target;
    const bus = new EventBus();
    bus.subscribe((e) => events.push(e));

    const writeRepo = (apps: Record<string, AppVariant>) => {
      const files: Record<string, string> = {
        'env.yaml': `apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: ${env} }\nspec:\n  target: ${f.targetYaml(env)}\n  apps: {${Object.keys(apps).map((a) => ` ${a}: {}`).join(',')} }\n`,
      };
      for (const [name, v] of Object.entries(apps)) Object.assign(files, f.appFiles(name, v));
      writeTree(ops, files);
    };
    const commit = async (apps: Record<string, AppVariant>, message: string) => {
      const from = events.length;
      writeRepo(apps);
      commitAll(ops, message);
      await engine.refresh();
      return waitFor(`sync after "${message}"`, () => events.slice(from).find((e) => e.type === 'sync.completed' && e.env === env), 120_000);
    };
    const appStatus = async (name: string) => (await engine.status(env)).environments[0]?.apps.find((a) => a.name === name);
    const since = (from: number) => events.slice(from);

    beforeAll(async () => {
      const stateDir = join(tmp.dir, 'state');
      store = new Store(stateDir);
      const log = silentLogger();
      writeRepo({ web: { version: '1.0.0', greeting: 'hello', withKept: true }, side: { version: '1.0.0', greeting: 'side' } });
      gitInit(ops);
      commitAll(ops, 'web and side');
      target = await f.createTarget({ env, store, bus, log, stateDir, requeue: (e) => engine?.requeue(e), specOf: (e) => engine?.targetSpecOf(e) });
      engine = new Engine({ repo: ops, stateDir, log, store, bus, target, pollMs: 600_000 });
      await engine.start();
      await waitFor('first sync', () => events.find((e) => (e.type === 'sync.completed' && e.env === env) || e.type === 'render.failed'), 120_000).catch((err) => {
        throw new Error(`${err.message}; events: ${JSON.stringify(events.slice(-5))}`);
      });
    }, 180_000);

    afterAll(async () => {
      await engine?.stop().catch(() => undefined);
      await f.cleanup(env).catch(() => undefined);
      store?.close();
      tmp.cleanup();
    }, 120_000);

    it('creates on first apply and becomes healthy', async () => {
      const created = events.filter((e) => e.type === 'app.changed' && e.action === 'created').map((e) => (e as { app: string }).app);
      expect(created.sort()).toEqual(['side', 'web']);
      await waitFor('web healthy', async () => (await appStatus('web'))?.health === 'Healthy');
      expect((await appStatus('web'))?.sync).toBe('Synced');
    });

    it('re-apply reports unchanged and writes nothing', async () => {
      const before = await f.fingerprint(env, 'web');
      const from = events.length;
      const r = await engine.sync(env);
      expect(r.result).toBe('Unchanged');
      expect(since(from).filter((e) => e.type === 'app.changed')).toEqual([]);
      expect(await f.fingerprint(env, 'web')).toBe(before);
    });

    it('changing one field reconfigures only that app', async () => {
      const sideBefore = await f.fingerprint(env, 'side');
      const from = events.length;
      const done = await commit({ web: { version: '1.0.0', greeting: 'bonjour', withKept: true }, side: { version: '1.0.0', greeting: 'side' } }, 'greeting');
      expect((done as { result: string }).result).toBe('Succeeded');
      const changed = since(from).filter((e) => e.type === 'app.changed');
      expect(changed.map((e) => [(e as { app: string }).app, (e as { action: string }).action])).toEqual([['web', 'configured']]);
      expect(await f.fingerprint(env, 'side')).toBe(sideBefore);
      const plan = await engine.plan(env);
      expect(plan.steps.every((s) => s.action === 'none')).toBe(true);
    });

    it('removing an app prunes it', async () => {
      const from = events.length;
      await commit({ web: { version: '1.0.0', greeting: 'bonjour', withKept: true } }, 'remove side');
      expect(since(from).some((e) => e.type === 'app.changed' && e.app === 'side' && e.action === 'deleted')).toBe(true);
      expect(await appStatus('side')).toBeUndefined();
    });

    it.skipIf(f.skips?.kept !== undefined)(`skips an object annotated to keep${f.skips?.kept ? ` (skipped: ${f.skips.kept})` : ''}`, async () => {
      const done = await commit({ web: { version: '1.0.0', greeting: 'bonjour' } }, 'drop the kept object');
      expect((done as { result: string }).result).toBe('Succeeded');
      expect(await f.keptExists!(env, 'web')).toBe(true);
    });

    it('heals drift', async () => {
      await waitFor('web healthy', async () => (await appStatus('web'))?.health === 'Healthy');
      const from = events.length;
      await f.drift(env, 'web');
      await waitFor('drift detected', () => since(from).find((e) => e.type === 'drift.detected' && e.app === 'web'), 30_000);
      await waitFor('drift healed', () => f.healed(env, 'web'), 30_000);
    });

    it('rolls a never-ready version back and reports Failed', async () => {
      const done = await commit({ web: { version: '2.0.0', greeting: 'bonjour', neverReady: true } }, 'broken 2.0.0');
      expect((done as { result: string }).result).toBe('Failed');
      const web = (await appStatus('web'))!;
      expect(web.version).toBe('1.0.0');
      expect(web.sync).toBe('Failed');
      await waitFor('web healthy on 1.0.0', async () => (await appStatus('web'))?.health === 'Healthy', 60_000);
    });
  });
}
