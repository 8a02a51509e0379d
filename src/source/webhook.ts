import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export type WebhookProvider = 'github' | 'gitlab' | 'generic';

export interface WebhookRequest {
  /** Header names in lower case. */
  headers: Record<string, string | undefined>;
  /** The raw body, exactly as received (signatures cover its bytes). */
  body: Buffer;
}

export type WebhookVerdict =
  | { ok: true; provider: WebhookProvider }
  | { ok: false; status: 401 | 403; reason: string };

/**
 * Checks that a webhook comes from someone who knows the secret: GitHub's `x-hub-signature-256`
 * (HMAC-SHA256 of the body) or GitLab's `x-gitlab-token`. Without a secret (unset or empty) every
 * request is accepted as `generic`; with one, unsigned requests get 401 and wrong signatures 403.
 */
export function verifyWebhook(req: WebhookRequest, secret: string | undefined): WebhookVerdict {
  if (!secret) return { ok: true, provider: 'generic' };

  const signature = req.headers['x-hub-signature-256'];
  if (signature !== undefined) {
    const given = /^sha256=([0-9a-f]{64})$/i.exec(signature.trim())?.[1];
    if (!given) return { ok: false, status: 403, reason: 'malformed x-hub-signature-256 header: expected sha256=<hex>' };
    const expected = createHmac('sha256', secret).update(req.body).digest();
    if (!timingSafeEqual(Buffer.from(given, 'hex'), expected))
      return { ok: false, status: 403, reason: 'x-hub-signature-256 does not match the body; check the webhook secret' };
    return { ok: true, provider: 'github' };
  }

  const token = req.headers['x-gitlab-token'];
  if (token !== undefined) {
    if (!equalSecrets(token, secret))
      return { ok: false, status: 403, reason: 'x-gitlab-token does not match; check the webhook secret token' };
    return { ok: true, provider: 'gitlab' };
  }

  if (req.headers['x-hub-signature'] !== undefined)
    return { ok: false, status: 401, reason: 'only x-hub-signature-256 is accepted; GitHub sends it when a secret is set' };
  return {
    ok: false,
    status: 401,
    reason: 'unsigned webhook: send x-hub-signature-256 (GitHub) or x-gitlab-token (GitLab) with the configured secret',
  };
}

// Hashing first gives equal lengths, so the comparison reveals neither content nor length.
function equalSecrets(a: string, b: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(digest(a), digest(b));
}
