/**
 * `keelson diff --revision R --repo DIR` without a running engine: the engine's own preview (render, plan, per-object
 * server-side diff) run in this process over a local git repository. Live is what can be read without running
 * anything: Kubernetes environments from their cluster (with the inventories of `--state-dir`, an engine's state dir,
 * when given), local environments from the inventory of that state dir (what the engine last applied; their
 * processes are never touched). Nothing is started, applied or deleted.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { DesiredApp } from '../core/model.js';
import { Engine, type Preview } from '../engine/engine.js';
import { EventBus } from '../core/events.js';
import { createLogger } from '../log.js';
import { Store } from '../store/store.js';
import { createTargetRegistry } from '../targets/default-targets.js';
import { templateHash } from '../targets/local/spec-hash.js';
import type { ApplyOutcome, LiveApp, Target } from '../targets/target.js';

export async function offlinePreview(o: { repo: string; revision: string; env?: string; path?: string; stateDir?: string }): Promise<Preview> {
  const given = o.stateDir ?? (existsSync('.keelson') ? '.keelson' : undefined);
  const stateDir = given ? resolve(given) : mkdtempSync(join(tmpdir(), 'keelson-diff-'));
  const log = createLogger({ level: process.env.KEELSON_LOG_LEVEL ?? 'warn' });
  const store = new Store(stateDir);
  const bus = new EventBus();
  let engine: Engine | undefined;
  const targets = createTargetRegistry({ local: new AppliedLocal(store), store, bus, log, requeue: () => undefined, specOf: (env) => engine?.targetSpecOf(env) });
  try {
    engine = new Engine({ repo: o.repo, path: o.path, stateDir, log, store, bus, target: targets });
    return await engine.preview(o.revision, { env: o.env });
  } finally {
    await targets.close().catch(() => undefined);
    store.close();
    if (!given) rmSync(stateDir, { recursive: true, force: true });
  }
}

/**
 * Local environments seen through the store: the spec each app was last applied with. Read-only; the supervised
 * processes belong to the engine.
 */
class AppliedLocal implements Target {
  readonly name = 'local';
  constructor(private readonly store: Store) {}
  async start(): Promise<void> {}
  async close(): Promise<void> {}
  templateOf(app: DesiredApp): string {
    return templateHash(app);
  }
  async observe(env: string): Promise<LiveApp[]> {
    return this.store.inventory(env).map((row) => {
      const spec = row.spec as DesiredApp;
      return {
        name: row.app,
        spec,
        template: row.specHash,
        version: row.version,
        revision: row.revision,
        health: 'Unknown',
        message: 'as last applied (offline preview)',
        replicas: { desired: spec.replicas, ready: 0, total: 0, updated: 0 },
        instances: [],
        intact: true,
      };
    });
  }
  async apply(): Promise<ApplyOutcome> {
    throw new Error('an offline preview applies nothing');
  }
  async delete(): Promise<void> {
    throw new Error('an offline preview deletes nothing');
  }
  logs(): { replica: string; path: string }[] {
    return [];
  }
}
