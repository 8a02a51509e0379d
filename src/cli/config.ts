import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ExitError } from '../core/errors.js';
import type { EnginePolicy } from '../policy/policy.js';
import { policyFromConfig } from '../policy/config.js';

/** Settings of `keelson up`. Flags override KEELSON_* environment variables, which override the config file. */
export interface UpConfig {
  repo: string;
  branch?: string;
  path?: string;
  envs: string[];
  listen: string;
  stateDir: string;
  poll: string;
  webhookSecret?: string;
  /** Host names (`name` or `name:port`) the API answers to besides loopback names (DNS rebinding protection). */
  allowedHosts: string[];
  /** Apps without `user:` may run as root when the engine runs as root (see docs/isolation.md). */
  allowRootApps: boolean;
  /** The user apps without `user:` run as when the engine runs as root. */
  defaultUser?: string;
  /** `clusters:` and `policy:` of the config file (never from flags, the environment or git). */
  policy: EnginePolicy;
  /** Shared web ports of apps with `hosts` (default 80 and 443). */
  httpPort: number;
  httpsPort: number;
  /** Address the proxy's public ports bind to (default 127.0.0.1; 0.0.0.0 to serve the world). */
  proxyListenHost: string;
  /** Peers (other proxies of the operator) whose X-Forwarded-For the proxy keeps. */
  trustedProxies: string[];
}

const envNames: Record<Exclude<keyof UpConfig, 'policy'>, string> = {
  repo: 'KEELSON_REPO',
  branch: 'KEELSON_BRANCH',
  path: 'KEELSON_PATH',
  envs: 'KEELSON_ENVS',
  listen: 'KEELSON_LISTEN',
  stateDir: 'KEELSON_STATE_DIR',
  poll: 'KEELSON_POLL',
  webhookSecret: 'KEELSON_WEBHOOK_SECRET',
  allowedHosts: 'KEELSON_ALLOWED_HOSTS',
  allowRootApps: 'KEELSON_ALLOW_ROOT_APPS',
  defaultUser: 'KEELSON_DEFAULT_USER',
  httpPort: 'KEELSON_HTTP_PORT',
  httpsPort: 'KEELSON_HTTPS_PORT',
  proxyListenHost: 'KEELSON_PROXY_LISTEN_HOST',
  trustedProxies: 'KEELSON_TRUSTED_PROXIES',
};

export function resolveUpConfig(flags: Partial<Record<Exclude<keyof UpConfig, 'policy'>, unknown>> & { config?: string; webhookSecretFile?: string }): UpConfig {
  const stateDirGuess = (flags.stateDir as string) ?? process.env.KEELSON_STATE_DIR ?? '.keelson';
  const file = flags.config ?? process.env.KEELSON_CONFIG ?? join(stateDirGuess, 'keelson.yaml');
  let fromFile: Record<string, unknown> = {};
  if (existsSync(file)) {
    try {
      fromFile = (parseYaml(readFileSync(file, 'utf8')) as Record<string, unknown>) ?? {};
    } catch (err) {
      throw new ExitError(2, `${file}: ${(err as Error).message}`);
    }
  } else if (flags.config) {
    throw new ExitError(2, `config file ${flags.config} does not exist`);
  }
  const pick = (k: Exclude<keyof UpConfig, 'policy'>): unknown => {
    if (flags[k] !== undefined && !(Array.isArray(flags[k]) && (flags[k] as unknown[]).length === 0)) return flags[k];
    const fromEnv = process.env[envNames[k]];
    if (fromEnv !== undefined && fromEnv !== '') return k === 'envs' || k === 'allowedHosts' || k === 'trustedProxies' ? fromEnv.split(',').map((s) => s.trim()).filter(Boolean) : fromEnv;
    return fromFile[k];
  };
  const repo = pick('repo');
  if (typeof repo !== 'string' || !repo) throw new ExitError(2, '--repo is required (a directory or a git URL); e.g. keelson up --repo ./ops');
  let webhookSecret = pick('webhookSecret') as string | undefined;
  if (flags.webhookSecretFile) webhookSecret = readFileSync(flags.webhookSecretFile, 'utf8').trim();
  const envs = pick('envs');
  const allowedHosts = pick('allowedHosts');
  let policy: EnginePolicy;
  try {
    policy = policyFromConfig(fromFile, file);
  } catch (err) {
    throw new ExitError(2, (err as Error).message);
  }
  return {
    repo: isUrl(repo) ? repo : resolve(repo),
    branch: pick('branch') as string | undefined,
    path: pick('path') as string | undefined,
    envs: Array.isArray(envs) ? envs.map(String) : [],
    listen: (pick('listen') as string | undefined) ?? '127.0.0.1:7070',
    stateDir: resolve((pick('stateDir') as string | undefined) ?? '.keelson'),
    poll: String(pick('poll') ?? '10s'),
    webhookSecret,
    allowedHosts: Array.isArray(allowedHosts) ? allowedHosts.map(String) : typeof allowedHosts === 'string' ? [allowedHosts] : [],
    allowRootApps: isTrue(pick('allowRootApps')),
    defaultUser: (pick('defaultUser') as string | undefined) || undefined,
    policy,
    httpPort: portOf(pick('httpPort'), 80, '--http-port'),
    httpsPort: portOf(pick('httpsPort'), 443, '--https-port'),
    proxyListenHost: (pick('proxyListenHost') as string | undefined) ?? '127.0.0.1',
    trustedProxies: ((pick('trustedProxies') as unknown[] | undefined) ?? []).map(String),
  };
}

function isTrue(v: unknown): boolean {
  return v === true || (typeof v === 'string' && ['1', 'true', 'yes'].includes(v.toLowerCase()));
}

function portOf(v: unknown, fallback: number, flag: string): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new ExitError(2, `${flag} must be a port number (1-65535), got ${String(v)}`);
  return n;
}

function isUrl(s: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(s) || /^[^/]+@[^:]+:/.test(s);
}
