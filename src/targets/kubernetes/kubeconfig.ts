/**
 * Where a cluster is and how to prove who we are: a kubeconfig (the files `kubectl` reads, merged the way it merges
 * them) or, inside a pod, the service account. Pure loading here; the credentials that can change while Keelson runs
 * (exec plugins, rotated service account tokens, token files) are read by `Credentials` when a request needs them.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import { parse } from 'yaml';
import { TerminalError, TransientError } from '../../core/errors.js';

export interface ClusterSpec {
  kubeconfig?: string;
  context?: string;
}

interface ExecConfig {
  apiVersion?: string;
  command: string;
  args?: string[];
  env?: { name: string; value: string }[];
  installHint?: string;
  provideClusterInfo?: boolean;
}

/** One cluster and user, resolved: file references read, relative paths taken from the kubeconfig's directory. */
export interface Connection {
  server: string;
  /** Where it came from, for messages: `context "x" in /path` or `in-cluster service account`. */
  origin: string;
  namespace?: string;
  ca?: Buffer;
  insecure: boolean;
  serverName?: string;
  cert?: Buffer;
  key?: Buffer;
  token?: string;
  tokenFile?: string;
  basic?: { username: string; password: string };
  exec?: ExecConfig;
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The service account's directory: the kubelet's mount, or `KEELSON_SERVICEACCOUNT_DIR` (a projected volume elsewhere). */
function serviceAccountDir(env: NodeJS.ProcessEnv): string {
  return env.KEELSON_SERVICEACCOUNT_DIR || SA_DIR;
}

/**
 * The connection `spec` names: its kubeconfig file, else `$KUBECONFIG` (a list of files, merged: the first file that
 * names a cluster, user or context wins), else `~/.kube/config`, else the pod's service account. `spec.context`
 * picks a context; the current context otherwise. The service account is read from
 * `/var/run/secrets/kubernetes.io/serviceaccount` (`token`, `ca.crt`, `namespace`), or from `KEELSON_SERVICEACCOUNT_DIR`.
 */
export function loadConnection(spec: ClusterSpec, env: NodeJS.ProcessEnv = process.env, saDir = serviceAccountDir(env)): Connection {
  const files = spec.kubeconfig
    ? [spec.kubeconfig]
    : env.KUBECONFIG
      ? env.KUBECONFIG.split(delimiter).filter(Boolean)
      : existsSync(join(env.HOME ?? homedir(), '.kube', 'config'))
        ? [join(env.HOME ?? homedir(), '.kube', 'config')]
        : [];
  if (files.length === 0) {
    if (env.KUBERNETES_SERVICE_HOST && existsSync(join(saDir, 'token'))) return inCluster(env, saDir);
    throw new TerminalError('no Kubernetes cluster configured: set spec.target.kubernetes.kubeconfig or KUBECONFIG');
  }
  return fromKubeconfig(files, spec.context, spec.kubeconfig !== undefined);
}

function inCluster(env: NodeJS.ProcessEnv, saDir: string): Connection {
  const host = env.KUBERNETES_SERVICE_HOST!;
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  const nsFile = join(saDir, 'namespace');
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    origin: 'the in-cluster service account',
    namespace: existsSync(nsFile) ? readFileSync(nsFile, 'utf8').trim() : undefined,
    ca: readFileSync(join(saDir, 'ca.crt')),
    insecure: false,
    tokenFile: join(saDir, 'token'), // bound tokens rotate: read when used
  };
}

interface Named<T> {
  name: string;
  value: T;
  file: string;
}

function fromKubeconfig(files: string[], contextName: string | undefined, explicit: boolean): Connection {
  const clusters = new Map<string, Named<any>>();
  const users = new Map<string, Named<any>>();
  const contexts = new Map<string, Named<any>>();
  let current: string | undefined;
  let read = 0;
  for (const file of files) {
    let doc: any;
    try {
      doc = parse(readFileSync(file, 'utf8')) ?? {};
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !explicit) continue; // kubectl skips missing files in KUBECONFIG
      throw new TerminalError(`cannot read kubeconfig ${file}: ${(err as Error).message}`, { cause: err });
    }
    read++;
    const add = (into: Map<string, Named<any>>, list: unknown, field: string) => {
      for (const item of Array.isArray(list) ? list : []) {
        if (item?.name && !into.has(item.name)) into.set(item.name, { name: item.name, value: item[field] ?? {}, file });
      }
    };
    add(clusters, doc.clusters, 'cluster');
    add(users, doc.users, 'user');
    add(contexts, doc.contexts, 'context');
    current ??= doc['current-context'] || undefined;
  }
  const where = files.join(delimiter);
  if (read === 0) throw new TerminalError(`cannot read kubeconfig ${where}: no such file`);
  const name = contextName ?? current;
  if (!name) throw new TerminalError(`kubeconfig ${where} has no current context; set spec.target.kubernetes.context (contexts: ${[...contexts.keys()].join(', ') || 'none'})`);
  const ctx = contexts.get(name);
  if (!ctx) throw new TerminalError(`kubeconfig has no context "${name}" (contexts: ${[...contexts.keys()].join(', ') || 'none'})`);
  const cluster = clusters.get(ctx.value.cluster);
  if (!cluster?.value?.server) throw new TerminalError(`context "${name}" in ${ctx.file} names cluster "${ctx.value.cluster}", which has no server in ${where}`);
  const user = ctx.value.user ? users.get(ctx.value.user) : undefined;
  if (ctx.value.user && !user) throw new TerminalError(`context "${name}" in ${ctx.file} names user "${ctx.value.user}", which is not in ${where}`);
  const c = cluster.value;
  const u = user?.value ?? {};
  if (c['proxy-url']) throw new TerminalError(`cluster "${cluster.name}" in ${cluster.file} sets proxy-url, which Keelson does not support yet; reach the API server directly`);
  if (u['auth-provider']) {
    throw new TerminalError(
      `user "${user!.name}" in ${user!.file} uses the auth-provider "${u['auth-provider'].name}"; Keelson supports exec credential plugins instead (kubelogin for OIDC and AKS, gke-gcloud-auth-plugin for GKE, aws eks get-token for EKS)`,
    );
  }
  const bytes = (data: string | undefined, path: string | undefined, file: string): Buffer | undefined => {
    if (data) return Buffer.from(data, 'base64');
    if (!path) return undefined;
    const p = isAbsolute(path) ? path : join(dirname(file), path);
    try {
      return readFileSync(p);
    } catch (err) {
      throw new TerminalError(`cannot read ${p} (named in ${file}): ${(err as Error).message}`, { cause: err });
    }
  };
  return {
    server: String(c.server).replace(/\/+$/, ''),
    origin: `context "${name}" in ${ctx.file}`,
    namespace: ctx.value.namespace,
    ca: bytes(c['certificate-authority-data'], c['certificate-authority'], cluster.file),
    insecure: c['insecure-skip-tls-verify'] === true,
    serverName: c['tls-server-name'],
    cert: bytes(u['client-certificate-data'], u['client-certificate'], user?.file ?? ''),
    key: bytes(u['client-key-data'], u['client-key'], user?.file ?? ''),
    token: u.token,
    tokenFile: u.tokenFile ? (isAbsolute(u.tokenFile) ? u.tokenFile : join(dirname(user!.file), u.tokenFile)) : undefined,
    basic: u.username ? { username: u.username, password: u.password ?? '' } : undefined,
    // kubectl runs a plugin given by a relative path from the kubeconfig's directory.
    exec: u.exec ? { ...u.exec, command: u.exec.command?.includes('/') && !isAbsolute(u.exec.command) ? join(dirname(user!.file), u.exec.command) : u.exec.command } : undefined,
  };
}

/** What a request presents: a header and, from exec plugins that hand out certificates, a client certificate. */
export interface Credential {
  authorization?: string;
  cert?: Buffer;
  key?: Buffer;
}

/**
 * The credential for the next request. Static ones are computed once; a token file is re-read at most every minute
 * (the kubelet rotates bound service account tokens); an exec plugin runs again when what it gave expires, or after
 * the server answered 401 (`invalidate`).
 */
export class Credentials {
  private cached?: { cred: Credential; until: number };
  private pending?: Promise<Credential>;

  constructor(private readonly c: Connection) {}

  async get(): Promise<Credential> {
    if (this.cached && Date.now() < this.cached.until) return this.cached.cred;
    this.pending ??= this.fetch().finally(() => (this.pending = undefined));
    return this.pending;
  }

  invalidate(): void {
    this.cached = undefined;
  }

  private async fetch(): Promise<Credential> {
    const c = this.c;
    let cred: Credential = { cert: c.cert, key: c.key };
    let until = Infinity;
    if (c.exec) {
      const { status, expires } = await runExecPlugin(c.exec, c);
      const same = (b: Buffer | undefined, s: string) => (b && b.equals(Buffer.from(s)) ? b : Buffer.from(s));
      // The same certificate again keeps the same Buffer: the client keeps its connections (see KubeClient.agentFor).
      const before = this.cached?.cred;
      cred = {
        authorization: status.token ? `Bearer ${status.token}` : undefined,
        cert: status.clientCertificateData ? same(before?.cert, status.clientCertificateData) : c.cert,
        key: status.clientKeyData ? same(before?.key, status.clientKeyData) : c.key,
      };
      until = expires ?? Infinity;
    } else if (c.tokenFile) {
      cred.authorization = `Bearer ${readFileSync(c.tokenFile, 'utf8').trim()}`;
      until = Date.now() + 60_000;
    } else if (c.token) cred.authorization = `Bearer ${c.token}`;
    else if (c.basic) cred.authorization = `Basic ${Buffer.from(`${c.basic.username}:${c.basic.password}`).toString('base64')}`;
    this.cached = { cred, until };
    return cred;
  }
}

/** client.authentication.k8s.io ExecCredential: the plugin prints one on stdout. */
function runExecPlugin(exec: ExecConfig, c: Connection): Promise<{ status: any; expires?: number }> {
  const apiVersion = exec.apiVersion ?? 'client.authentication.k8s.io/v1';
  const info: any = { apiVersion, kind: 'ExecCredential', spec: { interactive: false } };
  if (exec.provideClusterInfo) {
    info.spec.cluster = { server: c.server, 'certificate-authority-data': c.ca?.toString('base64'), 'insecure-skip-tls-verify': c.insecure, 'tls-server-name': c.serverName };
  }
  // Keelson's own secrets (the age key, API tokens) are not the plugin's business.
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KEELSON_') && !k.startsWith('SOPS_AGE_')));
  env.KUBERNETES_EXEC_INFO = JSON.stringify(info);
  for (const e of exec.env ?? []) env[e.name] = e.value;
  return new Promise((resolve, reject) => {
    execFile(exec.command, exec.args ?? [], { env, timeout: 60_000, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) {
        const why = `the kubeconfig's credential plugin ${exec.command} failed: ${String(stderr).trim().split('\n').pop() || err.message}`;
        // Not installed: retrying will not help. A plugin that ran and failed (a network blip at the cloud's token
        // service, a timeout) may well work on the next try.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return reject(new TerminalError(`${why}${exec.installHint ? `; ${exec.installHint.trim()}` : ''}`));
        return reject(new TransientError(why));
      }
      try {
        const out = JSON.parse(stdout);
        const status = out.status ?? {};
        if (!status.token && !status.clientCertificateData) throw new Error('it printed neither a token nor a client certificate');
        const expires = status.expirationTimestamp ? Date.parse(status.expirationTimestamp) - 10_000 : undefined;
        resolve({ status, expires });
      } catch (e) {
        reject(new TerminalError(`the kubeconfig's credential plugin ${exec.command} printed no usable ExecCredential: ${(e as Error).message}`));
      }
    });
  });
}
