/**
 * The connection to a cluster: a kubeconfig (file, context) and a dynamic client that returns objects as the API
 * server sent them (no typed deserialization, which would drop fields the client library does not know).
 */
import { ApiException, KubeConfig, KubernetesObjectApi, type RequestContext, type V1APIResource } from '@kubernetes/client-node';
import { TerminalError } from '../../core/errors.js';
import type { KObject } from './objects.js';

export interface ClusterSpec {
  kubeconfig?: string;
  context?: string;
}

export class ObjectApi extends KubernetesObjectApi {
  /** `{ name (plural), namespaced }` of a kind, from discovery (cached). */
  async resourceOf(apiVersion: string, kind: string): Promise<V1APIResource | undefined> {
    return this.resource(apiVersion, kind);
  }

  /** Forget discovery of `apiVersion` (a CRD was just established). */
  forget(apiVersion: string): void {
    delete this.apiVersionResourceCache[apiVersion];
  }

  protected override async processResponse<T>(response: any, type?: string): Promise<T> {
    if (response.httpStatusCode >= 200 && response.httpStatusCode <= 299) {
      const text = await response.body.text();
      if (type === 'V1APIResourceList' || type === 'V1Status') return super.processResponse({ ...response, body: { text: async () => text } }, type) as T;
      return (text ? JSON.parse(text) : {}) as T;
    }
    return super.processResponse(response, type) as Promise<T>;
  }
}

/**
 * A kubeconfig whose API requests share one connection pool. The client library gives every request a new
 * dispatcher, so each request paid a TLS handshake and left an idle socket behind: at a thousand objects that was
 * most of Keelson's CPU and memory (see bench/kubernetes.mjs). Credentials in headers (tokens, exec plugins) are
 * still applied per request; the pool keeps the TLS identity (CA, client certificate) it was first made with.
 */
export class PooledKubeConfig extends KubeConfig {
  private pool?: ReturnType<RequestContext['getDispatcher']>;

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const fresh = context.getDispatcher();
    if (!fresh) return;
    this.pool ??= fresh;
    if (fresh !== this.pool) {
      context.setDispatcher(this.pool);
      void fresh.close().catch(() => undefined); // never connected
    }
  }
}

export interface Cluster {
  kc: KubeConfig;
  api: ObjectApi;
}

export function connect(spec: ClusterSpec): Cluster {
  const kc = new PooledKubeConfig();
  try {
    if (spec.kubeconfig) kc.loadFromFile(spec.kubeconfig);
    else kc.loadFromDefault();
  } catch (err) {
    throw new TerminalError(`cannot read kubeconfig ${spec.kubeconfig ?? process.env.KUBECONFIG ?? '~/.kube/config'}: ${(err as Error).message}`, { cause: err });
  }
  if (spec.context) {
    if (!kc.getContexts().some((c) => c.name === spec.context)) {
      throw new TerminalError(`kubeconfig has no context "${spec.context}" (contexts: ${kc.getContexts().map((c) => c.name).join(', ') || 'none'})`);
    }
    kc.setCurrentContext(spec.context);
  }
  if (!kc.getCurrentCluster()) throw new TerminalError('no Kubernetes cluster configured: set spec.target.kubernetes.kubeconfig or KUBECONFIG');
  return { kc, api: kc.makeApiClient(ObjectApi) };
}

export function statusCode(err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : undefined;
}

export function isNotFound(err: unknown): boolean {
  return statusCode(err) === 404;
}

/** The API server's own message (`Status.message`), not the client's long dump of headers. */
export function apiMessage(err: unknown): string {
  if (err instanceof ApiException) {
    const body = err.body as unknown;
    let parsed: any = body;
    if (typeof body === 'string') {
      try {
        parsed = JSON.parse(body);
      } catch {
        parsed = { message: body };
      }
    }
    return `${parsed?.reason ? `(${parsed.reason}) ` : ''}${parsed?.message ?? `HTTP ${err.code}`}`;
  }
  return err instanceof Error ? err.message : String(err);
}

/** The REST path of a kind's collection: `/apis/apps/v1/deployments` (all namespaces) or within one namespace. */
export function collectionPath(apiVersion: string, plural: string, namespace?: string): string {
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  return namespace ? `${base}/namespaces/${namespace}/${plural}` : `${base}/${plural}`;
}

export type { KObject };
