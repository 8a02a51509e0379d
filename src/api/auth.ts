import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Context, MiddlewareHandler } from 'hono';
import { z } from 'zod';
import { ExitError } from '../core/errors.js';
import { formatIssue } from '../core/types.js';
import { parseYaml } from '../render/load.js';
import { validate } from '../render/schema-issues.js';

/**
 * Bearer tokens with roles. Tokens come from a tokens file (sha256 hashes only) and/or environment variables
 * (plaintext, hashed on load); in memory Keelson keeps only the hashes.
 */
export type Role = 'viewer' | 'operator' | 'admin';
export const roles: readonly Role[] = ['viewer', 'operator', 'admin'];
/** What a route needs: a role, or `public` (health, the dashboard's static files, signed webhooks). */
export type Access = Role | 'public';

export function hasRole(have: Role, need: Role): boolean {
  return roles.indexOf(have) >= roles.indexOf(need);
}

export interface TokenEntry {
  name: string;
  role: Role;
  /** Hex sha256 of the token. */
  sha256: string;
}

export interface Principal {
  name: string;
  role: Role;
  /** True when no tokens are configured: a read-only viewer on loopback. */
  anonymous: boolean;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** A new random token: 32 bytes, base64url, prefixed so it is recognisable in a secret scanner. */
export function generateToken(): string {
  return `kls_${randomBytes(32).toString('base64url')}`;
}

const tokensFileSchema = z.strictObject({
  tokens: z.array(
    z.strictObject({
      name: z.string().min(1),
      role: z.enum(['viewer', 'operator', 'admin']),
      sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be the hex sha256 of the token (see `keelson token create`)'),
    }),
  ),
});

/** Environment variables holding plaintext tokens (comma-separated for several). */
export const tokenEnvVars: Record<Role, string> = {
  viewer: 'KEELSON_TOKEN_VIEWER',
  operator: 'KEELSON_TOKEN_OPERATOR',
  admin: 'KEELSON_TOKEN_ADMIN',
};

/** Reads a tokens file (YAML: `tokens: [{name, role, sha256}]`); mistakes are reported as file:line:col. */
export function readTokensFile(file: string): TokenEntry[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ExitError(2, `cannot read tokens file ${file}: ${(err as Error).message}`);
  }
  const { docs, issues } = parseYaml(file, text);
  if (issues.length) throw new ExitError(2, issues.map(formatIssue).join('\n'));
  if (docs.length !== 1) throw new ExitError(2, `${file}: expected one YAML document with a "tokens" list`);
  const res = validate(tokensFileSchema, docs[0], docs[0].doc.toJS(), 'tokens file');
  if (!res.ok) throw new ExitError(2, res.issues.map(formatIssue).join('\n'));
  const names = new Set<string>();
  for (const t of res.value.tokens) {
    if (names.has(t.name)) throw new ExitError(2, `${file}: token name "${t.name}" appears twice; names identify who did what in the audit log`);
    names.add(t.name);
  }
  return res.value.tokens;
}

/** Tokens from the environment shorter than this are refused at start-up (`keelson token create` makes 47). */
export const MIN_TOKEN_LENGTH = 32;

/** Plaintext tokens from KEELSON_TOKEN_ADMIN / _OPERATOR / _VIEWER; throws (exit 2) on one shorter than 32 characters. */
export function tokensFromEnv(env: NodeJS.ProcessEnv = process.env): TokenEntry[] {
  const out: TokenEntry[] = [];
  for (const role of roles) {
    const list = (env[tokenEnvVars[role]] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    list.forEach((t, i) => {
      if (t.length < MIN_TOKEN_LENGTH) {
        throw new ExitError(
          2,
          `${tokenEnvVars[role]}: token ${i + 1} has ${t.length} characters; API tokens must have at least ${MIN_TOKEN_LENGTH} (a short token can be guessed). Create one with \`keelson token create\`.`,
        );
      }
      out.push({ name: `${role}${list.length > 1 ? `-${i + 1}` : ''}`, role, sha256: hashToken(t) });
    });
  }
  return out;
}

export type AuthFailure = { status: 401 | 403; message: string };

/** Who is calling: resolves an Authorization header to a principal, by the token's hash. */
export class Authenticator {
  private readonly byHash = new Map<string, TokenEntry>();

  constructor(tokens: TokenEntry[]) {
    for (const t of tokens) this.byHash.set(t.sha256, t);
  }

  /** Without tokens the API is read-only (viewer) for everyone; `keelson up` allows that only on loopback. */
  get enabled(): boolean {
    return this.byHash.size > 0;
  }

  identify(authorization: string | undefined): Principal | AuthFailure {
    if (!this.enabled) return { name: 'anonymous', role: 'viewer', anonymous: true };
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (!m) return { status: 401, message: 'authentication required: send "Authorization: Bearer <token>" (keelson CLI: --token or KEELSON_TOKEN)' };
    const entry = this.byHash.get(hashToken(m[1]));
    if (!entry) return { status: 401, message: 'unknown or revoked token' };
    return { name: entry.name, role: entry.role, anonymous: false };
  }

  /** Checks `need` for a request; returns the principal or why not. */
  authorize(authorization: string | undefined, need: Role): Principal | AuthFailure {
    const who = this.identify(authorization);
    if ('status' in who) return who;
    if (hasRole(who.role, need)) return who;
    if (who.anonymous) {
      return { status: 403, message: `Keelson is read-only: no API tokens are configured, so "${need}" actions are disabled. Configure tokens (--tokens-file or ${tokenEnvVars.admin}) to enable them.` };
    }
    return { status: 403, message: `token "${who.name}" has role ${who.role}; this needs ${need}` };
  }
}

/** The role each route needs, keyed `METHOD /path/:param`. `action` names what the audit log records. */
export interface RoutePolicy {
  access: Access;
  /** Set for routes that change something: recorded in the audit log with who, when and the result. */
  action?: string;
}

const principals = new WeakMap<Request, Principal>();

/** The caller of a request that passed the auth middleware. */
export function principalOf(c: Context): Principal | undefined {
  return principals.get(c.req.raw);
}

interface CompiledRoute {
  method: string;
  pattern: string;
  re: RegExp;
  policy: RoutePolicy;
}

export function compilePolicies(policies: Record<string, RoutePolicy>): CompiledRoute[] {
  return Object.entries(policies).map(([key, policy]) => {
    const [method, pattern] = key.split(' ');
    const re = new RegExp(
      '^' +
        pattern
          .split('/')
          .map((seg) => (seg.startsWith(':') ? '[^/]+' : seg === '*' ? '.*' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
          .join('/') +
        '$',
    );
    return { method, pattern, re, policy };
  });
}

/** Finds the policy of a request; literal segments win over parameters (`/ui/app.js` over `/ui/:file`). */
export function matchPolicy(compiled: CompiledRoute[], method: string, path: string): CompiledRoute | undefined {
  const m = method === 'HEAD' ? 'GET' : method;
  const hits = compiled.filter((r) => r.method === m && r.re.test(path));
  hits.sort((a, b) => b.pattern.split('/').filter((s) => !s.startsWith(':')).length - a.pattern.split('/').filter((s) => !s.startsWith(':')).length);
  return hits[0];
}

export interface AuthMiddlewareOptions {
  auth: Authenticator;
  policies: Record<string, RoutePolicy>;
  /** Called for every request to a route with an `action`, after it answered (or was denied). */
  onAction?: (e: { principal: Principal | undefined; action: string; path: string; status: number; res: Response | undefined; message?: string }) => void | Promise<void>;
}

/**
 * Every route declares its role in `policies`; a route without one needs admin (fail closed).
 */
export function authMiddleware(o: AuthMiddlewareOptions): MiddlewareHandler {
  const compiled = compilePolicies(o.policies);
  return async (c, next) => {
    const route = matchPolicy(compiled, c.req.method, c.req.path);
    const policy = route?.policy ?? { access: 'admin' as const };
    if (policy.access === 'public') {
      await next();
      if (policy.action) await o.onAction?.({ principal: undefined, action: policy.action, path: c.req.path, status: c.res.status, res: c.res });
      return;
    }
    const who = o.auth.authorize(c.req.header('authorization'), policy.access);
    if ('status' in who) {
      if (policy.action) {
        const p = o.auth.identify(c.req.header('authorization'));
        await o.onAction?.({ principal: 'status' in p ? undefined : p, action: policy.action, path: c.req.path, status: who.status, res: undefined, message: who.message });
      }
      const headers: Record<string, string> = who.status === 401 ? { 'www-authenticate': 'Bearer realm="keelson"' } : {};
      return c.json({ error: who.status === 401 ? 'Unauthorized' : 'Forbidden', message: who.message }, who.status, headers);
    }
    principals.set(c.req.raw, who);
    await next();
    if (policy.action) await o.onAction?.({ principal: who, action: policy.action, path: c.req.path, status: c.res.status, res: c.res });
  };
}
