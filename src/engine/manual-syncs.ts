/** What a manual sync did, as its caller hears it. */
export interface SyncOutcome {
  result: 'Succeeded' | 'Failed' | 'Unchanged';
  message: string;
}

/** The manual sync requests one reconcile of an environment serves, merged. */
export interface ManualRequest {
  /** Apps whose failed spec is retried. */
  apps: Set<string>;
  /** Apps whose apply takes over fields other managers own (`sync --force`). */
  force: Set<string>;
  /** Apps whose objects waiting for prune confirmation are deleted (`sync --confirm-prune`). */
  confirmPrune: Set<string>;
  /** Tells every caller merged into this request what the reconcile did. */
  settle(outcome: SyncOutcome): void;
}

interface Pending {
  apps: Set<string>;
  force: Set<string>;
  confirmPrune: Set<string>;
  callers: ((o: SyncOutcome) => void)[];
}

/**
 * Manual sync requests per environment. Requests made before a reconcile takes them are merged (the union of their
 * apps; `force` and `confirmPrune` of any of them stick to its apps), so concurrent `keelson sync` calls never overwrite each other;
 * each caller learns the outcome of the reconcile that served its request, not of one that ran before it.
 */
export class ManualSyncs {
  private readonly pending = new Map<string, Pending>();

  /** Queues a request; resolves with the outcome of the reconcile that takes it. */
  request(env: string, apps: string[], opts: { force?: boolean; confirmPrune?: boolean } = {}): Promise<SyncOutcome> {
    let p = this.pending.get(env);
    if (!p) this.pending.set(env, (p = { apps: new Set(), force: new Set(), confirmPrune: new Set(), callers: [] }));
    for (const a of apps) {
      p.apps.add(a);
      if (opts.force) p.force.add(a);
      if (opts.confirmPrune) p.confirmPrune.add(a);
    }
    const target = p;
    return new Promise((resolve) => target.callers.push(resolve));
  }

  /** The merged requests waiting for `env`, removed from the queue: the reconcile starting now serves them. */
  take(env: string): ManualRequest | undefined {
    const p = this.pending.get(env);
    if (!p) return undefined;
    this.pending.delete(env);
    let settled = false;
    return {
      apps: p.apps,
      force: p.force,
      confirmPrune: p.confirmPrune,
      settle: (outcome) => {
        if (settled) return;
        settled = true;
        for (const c of p.callers) c(outcome);
      },
    };
  }

  /** Answers every waiting caller (the engine is stopping). */
  cancelAll(message: string): void {
    for (const env of [...this.pending.keys()]) this.take(env)!.settle({ result: 'Unchanged', message });
  }
}
