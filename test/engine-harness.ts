import { join } from 'node:path';
import { Engine } from '../src/engine/engine.js';
import { EventBus } from '../src/engine/events.js';
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
}

/**
 * A real engine in this process: a git ops repository made from `files`, the local target, a store in a temp dir.
 * Resolves once every app of the first environment is Healthy.
 */
export async function startEngine(
  files: Record<string, string> = tickRepo,
  opts: { prefix?: string; beforeStart?: (h: Omit<EngineHarness, 'stop'>) => void } = {},
): Promise<EngineHarness> {
  const prefix = opts.prefix ?? 'keelson-engine-';
  const tmp = tempDir(prefix);
  const ops = join(tmp.dir, 'ops');
  const state = join(tmp.dir, 'state');
  writeTree(ops, files);
  gitInit(ops);
  commitAll(ops, 'initial');
  const log = silentLogger();
  const store = new Store(state);
  const bus = new EventBus();
  let engine: Engine | undefined;
  const target = new LocalTarget({ stateDir: state, store, bus, log, requeue: (env) => engine?.requeue(env) });
  engine = new Engine({ repo: ops, stateDir: state, log, store, bus, target, pollMs: 60_000 });
  opts.beforeStart?.({ dir: tmp.dir, ops, state, store, bus, target, engine });
  await engine.start();
  const started = engine;
  await waitFor('apps healthy', async () => {
    const apps = (await started.status()).environments[0]?.apps ?? [];
    return apps.length > 0 && apps.every((a) => a.health === 'Healthy');
  });
  return {
    dir: tmp.dir,
    ops,
    state,
    store,
    bus,
    target,
    engine: started,
    async stop() {
      await target.supervisor.stopAll();
      await target.proxy.stop();
      await started.stop();
      store.close();
      tmp.cleanup();
    },
  };
}
