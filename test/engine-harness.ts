import { join } from 'node:path';
import { Engine, type EngineOptions } from '../src/engine/engine.js';
import { EventBus } from '../src/core/events.js';
import { silentLogger } from '../src/log.js';
import { Store } from '../src/store/store.js';
import { LocalTarget } from '../src/targets/local/local-target.js';
import { commitAll, gitInit, tempDir, waitFor, writeTree } from './helpers.js';

/** One app, `tick`, in environment `dev`: a process that just runs. */
export const tickRepo = {
  'apps/tick.yaml': `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: tick }
spec:
  version: "1"
  artifact: { path: ../bin }
  run: { command: ["node", "-e", "setInterval(() => {}, 1000)"] }
---
apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata: { name: dev }
spec:
  apps: { tick: {} }
`,
  'bin/README': 'inline app\n',
};

export interface EngineHarness {
  dir: string;
  ops: string;
  state: string;
  store: Store;
  bus: EventBus;
  target: LocalTarget;
  engine: Engine;
  /** Stops every supervised process and the engine, and removes the temp dir. */
  stop(): Promise<void>;
  /**
   * Stops the engine as SIGTERM does (apps, the proxy and rollouts under way keep running; `whileStopped` runs then)
   * and starts a new one (new store, bus, target and engine objects here) on the same state dir and repository.
   * Resolves once it started, healthy or not.
   */
  restart(opts?: { whileStopped?: () => void | Promise<void>; beforeStart?: (h: Omit<EngineHarness, 'stop' | 'restart'>) => void }): Promise<void>;
}

type Booted = Pick<EngineHarness, 'store' | 'bus' | 'target' | 'engine'>;

/** Engine options a test sets on top of the harness's (the seams of the engine's design, e.g. `render`). */
export type EngineOverrides = Partial<Pick<EngineOptions, 'render' | 'policy'>>;

function boot(ops: string, state: string, overrides: EngineOverrides = {}): Booted {
  const log = silentLogger();
  const store = new Store(state);
  const bus = new EventBus();
  let engine: Engine | undefined;
  const target = new LocalTarget({ stateDir: state, store, bus, log, requeue: (env) => engine?.requeue(env) });
  engine = new Engine({ repo: ops, stateDir: state, log, store, bus, target, pollMs: 60_000, ...overrides });
  return { store, bus, target, engine };
}

/**
 * A real engine in this process: a git ops repository made from `files`, the local target, a store in a temp dir.
 * Resolves once every app of the first environment is Healthy.
 */
export async function startEngine(
  files: Record<string, string> = tickRepo,
  opts: { prefix?: string; beforeStart?: (h: Omit<EngineHarness, 'stop' | 'restart'>) => void; engine?: EngineOverrides } = {},
): Promise<EngineHarness> {
  const prefix = opts.prefix ?? 'keelson-engine-';
  const tmp = tempDir(prefix);
  const ops = join(tmp.dir, 'ops');
  const state = join(tmp.dir, 'state');
  writeTree(ops, files);
  gitInit(ops);
  commitAll(ops, 'initial');
  const first = boot(ops, state, opts.engine);
  opts.beforeStart?.({ dir: tmp.dir, ops, state, ...first });
  await first.engine.start();
  await waitFor('apps healthy', async () => {
    const apps = (await first.engine.status()).environments[0]?.apps ?? [];
    return apps.length > 0 && apps.every((a) => a.health === 'Healthy');
  });
  const h: EngineHarness = {
    dir: tmp.dir,
    ops,
    state,
    ...first,
    async stop() {
      // The engine first: a reconcile still running could start a replica after the supervisor stopped them all.
      await h.engine.stop();
      await h.target.supervisor.stopAll();
      await h.target.proxy.stop();
      h.store.close();
      tmp.cleanup();
    },
    async restart(o = {}) {
      await h.engine.stop();
      h.store.close();
      await o.whileStopped?.();
      Object.assign(h, boot(ops, state, opts.engine));
      o.beforeStart?.(h);
      await h.engine.start();
    },
  };
  return h;
}
