/**
 * What each app's last successful apply put into the cluster: the desired objects as applied (for prune and for
 * rollback to the previous revision), with the app spec and template that observe reports. Kept in the store;
 * the objects themselves carry Keelson's env/app labels.
 */
import type { DesiredApp } from '../../core/model.js';
import type { KvStore } from '../../store/kv.js';
import type { Adoption } from './adopt.js';
import type { Extraneous } from './delete.js';
import { identity, type KObject } from './objects.js';
import { isSecret, withoutData } from './secrets.js';

export interface AppInventory {
  env: string;
  app: string;
  revision: string;
  version: string;
  template: string;
  spec: DesiredApp;
  /** Objects as Keelson applied them (with ownership labels and the applied hash), in apply order. */
  objects: KObject[];
  appliedAt: string;
  /** A Helm chart's pre-delete hooks as last rendered: run when the app is removed, before its objects are pruned. */
  preDelete?: KObject[];
  /**
   * Identities of Secrets stored without their values (plaintext is never stored). Set only on records read back
   * from the store; the record `put` in this process keeps the values in memory.
   */
  redacted?: string[];
  /**
   * Objects no longer declared that are still in the cluster on purpose: kept by Argo CD's `Prune=false`, or waiting
   * for prune confirmation (`Prune=confirm`). Absent when none. Never healed; the status reports them.
   */
  extraneous?: Extraneous[];
  /**
   * The sync that wrote this record has not finished (crash safety): the record is written as soon as its objects are
   * applied (prune and drift healing need to know them), before PostSync hooks, chart tests and the engine's own
   * record. A record left with this marker by an engine that stopped there makes `observe` report the app OutOfSync,
   * and the next apply of the same spec finishes the sync instead of concluding that there is nothing to do. Cleared
   * when the engine has recorded the sync (`synced`).
   */
  pending?: PendingSync;
  /**
   * Rebuilt from the live objects labelled for the app (adopt.ts), not written by a sync of this engine: `objects`
   * are the live objects' metadata only. Used to prune; never applied or rolled back to; the next sync replaces it.
   */
  adopted?: Adoption;
}

export interface PendingSync {
  /** The ops-repository revision of the unfinished sync. */
  revision: string;
  /**
   * How far it got: `hooks`: objects applied, pruned and recorded; health, PostSync hooks and chart tests not yet
   * done. `engine`: everything done here; the engine has not recorded the sync yet (its postSync delivery hooks and
   * inventory row).
   */
  phase: 'hooks' | 'engine';
  /** The record before this sync (phase `hooks`): what a failure of the finishing apply rolls back to. */
  previous?: AppInventory;
}

export type { KvStore };

export class InventoryStore {
  private readonly memo = new Map<string, AppInventory | null>();
  /** Each environment's app names as stored (read once; status reads them many times a second). Never mutated. */
  private readonly namesMemo = new Map<string, string[]>();

  constructor(private readonly kv: KvStore) {}

  private key(env: string, app: string): string {
    return `kubernetes.inventory/${env}/${app}`;
  }

  names(env: string): string[] {
    let names = this.namesMemo.get(env);
    if (!names) {
      const raw = this.kv.getKv(`kubernetes.inventory/${env}`);
      names = raw ? (JSON.parse(raw) as string[]) : [];
      this.namesMemo.set(env, names);
    }
    return names;
  }

  private setNames(env: string, names: string[]): void {
    this.kv.setKv(`kubernetes.inventory/${env}`, JSON.stringify(names));
    this.namesMemo.set(env, names);
  }

  get(env: string, app: string): AppInventory | undefined {
    const k = this.key(env, app);
    if (!this.memo.has(k)) {
      const raw = this.kv.getKv(k);
      this.memo.set(k, raw ? (JSON.parse(raw) as AppInventory) : null);
    }
    return this.memo.get(k) ?? undefined;
  }

  list(env: string): AppInventory[] {
    return this.names(env)
      .map((n) => this.get(env, n))
      .filter((i): i is AppInventory => i !== undefined);
  }

  put(inv: AppInventory): void {
    const k = this.key(inv.env, inv.app);
    this.kv.setKv(k, JSON.stringify(storedForm(inv)));
    this.memo.set(k, inv);
    const names = this.names(inv.env);
    if (!names.includes(inv.app)) this.setNames(inv.env, [...names, inv.app].sort());
  }

  delete(env: string, app: string): void {
    const k = this.key(env, app);
    this.kv.setKv(k, '');
    this.memo.set(k, null);
    this.setNames(env, this.names(env).filter((n) => n !== app));
  }
}

/** A record as stored: Secrets without their values (the previous record of a pending sync too). */
function storedForm(inv: AppInventory): AppInventory {
  const secrets = inv.objects.filter(isSecret);
  let out: AppInventory = secrets.length ? { ...inv, objects: inv.objects.map(withoutData), redacted: [...new Set([...(inv.redacted ?? []), ...secrets.map((o) => identity(o))])] } : inv;
  if (inv.pending?.previous) out = { ...out, pending: { ...inv.pending, previous: storedForm(inv.pending.previous) } };
  return out;
}
