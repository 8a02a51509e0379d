/**
 * Version automation inside the engine (`keelson up --auto-update-interval 5m`): every interval, the updatePolicy
 * check of `keelson update` runs against the remote head and each app with a newer matching version gets one commit,
 * pushed through the engine's ops-repo writer. Never downgrades (only versions newer than the declared one count).
 */
import { relative } from 'node:path';
import { ExitError, errorMessage } from '../core/errors.js';
import { formatIssue } from '../core/types.js';
import type { EventBus } from '../core/events.js';
import type { Logger } from '../log.js';
import type { EditContext, EngineWriter } from '../opsrepo/engine-writer.js';
import { WorkingCopy } from '../opsrepo/working-copy.js';
import { planUpdates, updateChanges, updateMessage, type AppUpdate } from './update.js';

export interface AutoUpdaterOptions {
  writer: EngineWriter;
  bus: EventBus;
  log: Logger;
  intervalMs: number;
}

/** The worktree as the CLI's working copy, rendered with the engine's path. */
function openOps(ctx: EditContext): Promise<WorkingCopy> {
  return WorkingCopy.open(ctx.dir, relative(ctx.dir, ctx.opsDir) || undefined);
}

/** The periodic check; `runOnce()` is one round (tests call it directly). */
export class AutoUpdater {
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private running?: Promise<AppUpdate[]>;

  constructor(private readonly o: AutoUpdaterOptions) {}

  start(): void {
    const tick = () => {
      this.timer = setTimeout(async () => {
        await this.runOnce();
        if (!this.stopped) tick();
      }, this.o.intervalMs);
      this.timer.unref();
    };
    tick();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** One round: commits every pending update; returns them. Never throws (failures are `automation.failed` events). */
  runOnce(): Promise<AppUpdate[]> {
    this.running ??= this.round().finally(() => (this.running = undefined));
    return this.running;
  }

  private async round(): Promise<AppUpdate[]> {
    let pending: AppUpdate[];
    try {
      pending = await this.pending();
    } catch (err) {
      this.fail(null, err);
      return [];
    }
    const done: AppUpdate[] = [];
    for (const app of pending.map((u) => u.app)) {
      try {
        // Planned again inside the commit: the head may have moved, and a retry starts from the new head.
        let committed: AppUpdate | undefined;
        const result = await this.o.writer.commit(async (ctx) => {
          const wc = await openOps(ctx);
          const u = (await planUpdates(wc, await this.desired(wc))).find((x) => x.app === app);
          if (!u) return null;
          committed = u;
          return { changes: await updateChanges(wc, u), message: `${updateMessage(u).trimEnd()}\nKeelson-Actor: version automation (keelson up --auto-update-interval)\n` };
        });
        if (!result || !committed) continue;
        done.push(committed);
        for (const c of committed.changes) {
          this.o.bus.publish({ type: 'automation.committed', env: c.env, app, from: c.from, to: c.to, commit: result.commit, message: `${app} ${c.from} → ${c.to} (${committed.semver}) committed as ${result.commit.slice(0, 7)}` });
        }
        this.o.log.info({ app, to: committed.to, commit: result.commit }, 'automation committed');
      } catch (err) {
        this.fail(app, err);
      }
    }
    return done;
  }

  /** What the remote head would update, planned in a throwaway worktree (nothing is committed). */
  private async pending(): Promise<AppUpdate[]> {
    let out: AppUpdate[] = [];
    await this.o.writer.commit(async (ctx) => {
      const wc = await openOps(ctx);
      out = await planUpdates(wc, await this.desired(wc));
      return null;
    });
    return out;
  }

  private async desired(wc: WorkingCopy) {
    const { desired, issues } = await wc.render();
    if (issues.length) throw new ExitError(1, `the ops repository has problems (keelson validate):\n${issues.map(formatIssue).join('\n')}`);
    return desired;
  }

  private fail(app: string | null, err: unknown): void {
    const message = errorMessage(err);
    this.o.bus.publish({ type: 'automation.failed', app, message });
    this.o.log.warn({ app, err: message }, 'automation failed');
  }
}
