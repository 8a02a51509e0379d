import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { Logger } from '../log.js';
import type { AuditLog } from './audit.js';
import { authMiddleware, type Authenticator } from './auth.js';
import { routePolicies } from './openapi.js';
import { hostCheck, type HostCheckOptions } from './host-check.js';
import { failedAuthLimit, rateLimit } from './rate-limit.js';

/** Request bodies of the API (webhooks excepted: they have their own 1 MiB limit). */
export const apiBodyLimitBytes = 64 * 1024;

export interface SecurityDeps {
  auth: Authenticator;
  audit: AuditLog;
  log: Logger;
  /** Webhook requests per client: burst and sustained rate. Default 20 at once, then 1/s. */
  webhookRate?: { burst: number; perSecond: number };
  /** Where the API listens and the host names it answers to (DNS rebinding and cross-site request protection). */
  hosts?: HostCheckOptions;
  /** Failed authentications per client address and minute before it gets 429. Default 10. */
  authFailuresPerMinute?: number;
}

export function remoteAddress(c: Context): string {
  try {
    return getConnInfo(c).remote.address ?? 'unknown';
  } catch {
    return 'unknown'; // app.request() in tests has no socket
  }
}

/**
 * Installs, in this order: the Host/Origin check, body limits, the webhook rate limit, the limit on failed
 * authentication per client address, and the auth middleware (every route's role comes
 * from the route table in openapi.ts; actions are written to the audit log with who, what, when and the result).
 */
export function installSecurity(app: Hono, d: SecurityDeps): void {
  if (d.hosts) app.use('*', hostCheck(d.hosts));
  const small = bodyLimit({
    maxSize: apiBodyLimitBytes,
    onError: (c) => c.json({ error: 'PayloadTooLarge', message: `request body larger than ${apiBodyLimitBytes / 1024} KiB` }, 413),
  });
  app.use('/api/*', (c, next) => (c.req.path.startsWith('/api/v1/webhooks/') ? next() : small(c, next)));
  const rate = d.webhookRate ?? { burst: 20, perSecond: 1 };
  app.use('/api/v1/webhooks/*', rateLimit({ ...rate, keyOf: remoteAddress }));
  app.use('*', failedAuthLimit({ perMinute: d.authFailuresPerMinute ?? 10, keyOf: remoteAddress }));
  app.use(
    '*',
    authMiddleware({
      auth: d.auth,
      policies: routePolicies(),
      onAction: async ({ principal, action, path, status, res, message }) => {
        let detail = message ?? '';
        let result: 'succeeded' | 'failed' | 'denied' = status === 401 || status === 403 ? 'denied' : status >= 400 ? 'failed' : 'succeeded';
        if (res && res.headers.get('content-type')?.includes('application/json')) {
          const body = (await res.clone().json().catch(() => ({}))) as { result?: string; message?: string };
          if (body.result === 'Failed') result = 'failed';
          detail = [body.result, body.message].filter(Boolean).join(': ');
        }
        const actor = principal?.name ?? (action === 'webhook' ? 'webhook' : 'unauthenticated');
        d.audit.record({ actor, role: principal?.role ?? null, action, target: path, result, status, message: detail });
        d.log.info({ actor, action, target: path, result, status }, 'api action');
      },
    }),
  );
}
