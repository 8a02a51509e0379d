/**
 * Property-based fuzzing of webhook verification: arbitrary bodies (JSON payloads of GitHub, GitLab and Gitea
 * shapes, and raw bytes) and arbitrary headers. `verifyWebhook` never throws, accepts exactly the requests signed
 * with the secret, and never echoes the secret.
 */
import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fuzzParams } from '../../test/fuzz.js';
import { verifyWebhook, type WebhookRequest } from './webhook.js';

const hex = (o: { minLength?: number; maxLength?: number } = {}) => fc.string({ unit: fc.constantFrom(...'0123456789abcdef'.split('')), ...o });
const sign = (body: Buffer, secret: string) => createHmac('sha256', secret).update(body).digest('hex');

/** Push payloads of the three forges, with random values where they put theirs. */
const payload = fc.oneof(
  fc.record({ ref: fc.string(), before: hex(), after: hex(), repository: fc.record({ full_name: fc.string() }), pusher: fc.record({ name: fc.string() }) }),
  fc.record({ object_kind: fc.constantFrom('push', 'tag_push', 'merge_request', ''), ref: fc.string(), checkout_sha: fc.oneof(hex(), fc.constant(null)), project: fc.record({ path_with_namespace: fc.string() }) }),
  fc.record({ ref: fc.string(), secret: fc.string(), commits: fc.array(fc.record({ id: hex(), message: fc.string() }), { maxLength: 3 }) }),
  fc.jsonValue(),
);

const body = fc.oneof(
  payload.map((p) => Buffer.from(JSON.stringify(p))),
  fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
  fc.string({ unit: 'binary', maxLength: 200 }).map((s) => Buffer.from(s)),
);

const HEADER_NAMES = ['x-hub-signature-256', 'x-hub-signature', 'x-gitlab-token', 'x-gitea-signature', 'x-gogs-signature', 'x-github-event', 'x-gitlab-event', 'x-gitea-event', 'content-type', 'user-agent'];
const headerValue = fc.oneof(
  fc.string({ maxLength: 80 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  hex({ minLength: 64, maxLength: 64 }).map((h) => `sha256=${h}`),
  hex({ minLength: 64, maxLength: 64 }).map((h) => ` SHA256=${h.toUpperCase()} `),
  fc.constantFrom('', 'sha256=', 'sha1=abc', 'application/json', 'sha256=' + 'g'.repeat(64)),
);
const headers = fc.dictionary(fc.oneof(fc.constantFrom(...HEADER_NAMES), fc.string({ maxLength: 10 })), fc.option(headerValue, { nil: undefined }), { maxKeys: 5 });
const secret = fc.oneof(fc.string({ minLength: 1, maxLength: 40 }), fc.constant("It's a Secret to Everybody"));

/** What verification must decide, from the rules alone. */
function expected(req: WebhookRequest, secret: string): boolean {
  const sig = req.headers['x-hub-signature-256'];
  if (sig !== undefined) return sig.trim().toLowerCase() === `sha256=${sign(req.body, secret)}`;
  const token = req.headers['x-gitlab-token'];
  return token !== undefined && token === secret;
}

describe('verifyWebhook fuzz', () => {
  it('never throws, and accepts exactly the requests signed with the secret', () => {
    fc.assert(
      fc.property(body, headers, secret, (b, h, s) => {
        const req = { headers: h, body: b };
        const v = verifyWebhook(req, s);
        expect(v.ok).toBe(expected(req, s));
        if (!v.ok) {
          expect([401, 403]).toContain(v.status);
          expect(v.reason).toMatch(/\S/);
          if (s.length >= 8) expect(v.reason).not.toContain(s);
        }
      }),
      fuzzParams(1000),
    );
  });

  it('accepts a correctly signed body of any shape, and refuses it after any change of one byte', () => {
    fc.assert(
      fc.property(body, secret, fc.nat(), fc.integer({ min: 1, max: 255 }), (b, s, at, x) => {
        const ok = verifyWebhook({ headers: { 'x-hub-signature-256': `sha256=${sign(b, s)}` }, body: b }, s);
        expect(ok).toEqual({ ok: true, provider: 'github' });
        if (b.length === 0) return;
        const tampered = Buffer.from(b);
        tampered[at % b.length] ^= x;
        const refused = verifyWebhook({ headers: { 'x-hub-signature-256': `sha256=${sign(b, s)}` }, body: tampered }, s);
        expect(refused).toMatchObject({ ok: false, status: 403 });
      }),
      fuzzParams(500),
    );
  });

  it('a signature made with another secret, or a near-miss token, is always refused', () => {
    fc.assert(
      fc.property(body, secret, secret, (b, s, other) => {
        fc.pre(s !== other);
        expect(verifyWebhook({ headers: { 'x-hub-signature-256': `sha256=${sign(b, other)}` }, body: b }, s)).toMatchObject({ ok: false, status: 403 });
        expect(verifyWebhook({ headers: { 'x-gitlab-token': other }, body: b }, s)).toMatchObject({ ok: false, status: 403 });
        // Gitea's own header alone is not a signature Keelson checks: refused as unsigned.
        expect(verifyWebhook({ headers: { 'x-gitea-signature': sign(b, s) }, body: b }, s)).toMatchObject({ ok: false, status: 401 });
      }),
      fuzzParams(500),
    );
  });
});
