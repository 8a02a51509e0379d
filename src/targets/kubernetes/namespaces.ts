/**
 * The namespaces an app's objects go into: the environment's own, created once per target (apps applied at once share
 * the one request), and any other an object names, which must exist unless the app or object asks for
 * `CreateNamespace=true` (Argo CD's sync option).
 */
import { TerminalError } from '../../core/errors.js';
import type { DesiredApp } from '../../core/model.js';
import type { Logger } from '../../log.js';
import { isNotFound, statusCode, type Cluster } from './client.js';
import { formatKey, LABEL_MANAGED_BY, syncOption, type KObject } from './objects.js';

export class Namespaces {
  private readonly known = new Map<string, Promise<void>>();

  constructor(
    private readonly home: string,
    private readonly log: Logger,
  ) {}

  /** Once per namespace and target; apps applied concurrently share the one request. */
  ensure(cluster: Cluster, name: string): Promise<void> {
    let p = this.known.get(name);
    if (!p) {
      p = this.create(cluster, name);
      this.known.set(name, p);
      p.catch(() => this.known.delete(name));
    }
    return p;
  }

  private async create(cluster: Cluster, name: string): Promise<void> {
    const existing = await cluster.api.read({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } }).catch((err) => {
      if (isNotFound(err)) return undefined;
      throw err;
    });
    if (existing) return;
    await cluster.api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { [LABEL_MANAGED_BY]: 'keelson' } } }, 'keelson').catch((err) => {
      if (statusCode(err) !== 409) throw err; // created meanwhile by someone else
    });
    this.log.info({ namespace: name }, 'namespace created');
  }

  /**
   * Namespaces other than the environment's that objects name in `metadata.namespace` must exist: created when the
   * object (or the App) has sync option `CreateNamespace=true`, else a missing one is an error that says so. One the
   * app declares as a Namespace object is created by the apply itself.
   */
  async foreign(cluster: Cluster, app: DesiredApp, objects: KObject[]): Promise<void> {
    const declared = new Set(objects.filter((o) => o.kind === 'Namespace').map((o) => o.metadata.name));
    const named = new Map<string, { first: KObject; create: boolean }>();
    for (const o of objects) {
      const ns = o.metadata.namespace;
      if (!ns || ns === this.home || declared.has(ns)) continue;
      const entry = named.get(ns) ?? { first: o, create: false };
      entry.create ||= syncOption(o, 'CreateNamespace', app.syncOptions) === 'true';
      named.set(ns, entry);
    }
    for (const [ns, { first, create }] of named) {
      if (create) {
        await this.ensure(cluster, ns);
        continue;
      }
      if (this.known.has(ns)) continue;
      const exists = await cluster.api.read({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }).then(
        () => true,
        (err) => {
          if (isNotFound(err)) return false;
          throw err;
        },
      );
      if (!exists) {
        throw new TerminalError(
          `namespace "${ns}" does not exist (${formatKey(first)} is in it); create it, declare it as a Namespace object, or add the sync option CreateNamespace=true (the App's spec.syncOptions, or the object's argocd.argoproj.io/sync-options annotation)`,
        );
      }
      this.known.set(ns, Promise.resolve());
    }
  }
}
