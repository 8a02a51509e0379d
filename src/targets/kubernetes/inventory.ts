/**
 * What each app's last successful apply put into the cluster: the desired objects as applied (for prune and for
 * rollback to the previous revision), with the app spec and template that observe reports. Kept in the store;
 * the objects themselves carry Keelson's env/app labels.
 */
import type { DesiredApp } from '../../core/model.js';
import type { KObject } from './objects.js';

export interface AppInventory {
  env: string;
  app: string;
  revision: string;
  version: string;
  template: string;
  spec: DesiredApp;
  /** Objects as Keelson applied them (with ownership labels and the applied hash), in apply order. */
  objects: KObject[];
  /** The namespaces Keelson created for this app's objects. */
  appliedAt: string;
}

export interface KvStore {
  getKv(key: string): string | undefined;
  setKv(key: string, value: string): void;
}

export class InventoryStore {
  private readonly memo = new Map<string, AppInventory | null>();

  constructor(private readonly kv: KvStore) {}

  private key(env: string, app: string): string {
    return `kubernetes.inventory/${env}/${app}`;
  }

  names(env: string): string[] {
    const raw = this.kv.getKv(`kubernetes.inventory/${env}`);
    return raw ? (JSON.parse(raw) as string[]) : [];
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
    this.kv.setKv(k, JSON.stringify(inv));
    this.memo.set(k, inv);
    const names = this.names(inv.env);
    if (!names.includes(inv.app)) this.kv.setKv(`kubernetes.inventory/${inv.env}`, JSON.stringify([...names, inv.app].sort()));
  }

  delete(env: string, app: string): void {
    const k = this.key(env, app);
    this.kv.setKv(k, '');
    this.memo.set(k, null);
    this.kv.setKv(`kubernetes.inventory/${env}`, JSON.stringify(this.names(env).filter((n) => n !== app)));
  }
}
