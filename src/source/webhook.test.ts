import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { verifyWebhook } from './webhook.js';

const secret = 'It\'s a Secret to Everybody';
const body = Buffer.from('{"ref":"refs/heads/main","after":"abc"}');
const sign = (b: Buffer, s = secret) => `sha256=${createHmac('sha256', s).update(b).digest('hex')}`;

describe('verifyWebhook', () => {
  it('accepts a GitHub request signed with the secret', () => {
    expect(verifyWebhook({ headers: { 'x-hub-signature-256': sign(body) }, body }, secret)).toEqual({
      ok: true,
      provider: 'github',
    });
  });

  it('matches the signature from GitHub’s documentation', () => {
    // https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries#testing-the-webhook-payload-validation
    const sig = 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17';
    const verdict = verifyWebhook({ headers: { 'x-hub-signature-256': sig }, body: Buffer.from('Hello, World!') }, secret);
    expect(verdict).toEqual({ ok: true, provider: 'github' });
  });

  it('rejects a GitHub signature made with another secret or over another body', () => {
    const wrongSecret = verifyWebhook({ headers: { 'x-hub-signature-256': sign(body, 'other') }, body }, secret);
    expect(wrongSecret).toMatchObject({ ok: false, status: 403 });
    const tampered = verifyWebhook({ headers: { 'x-hub-signature-256': sign(body) }, body: Buffer.from(`${body} `) }, secret);
    expect(tampered).toMatchObject({ ok: false, status: 403 });
  });

  it('rejects a malformed GitHub signature', () => {
    for (const sig of ['sha1=abc', 'sha256=zz', 'sha256=', sign(body).slice(0, -2)])
      expect(verifyWebhook({ headers: { 'x-hub-signature-256': sig }, body }, secret)).toMatchObject({ ok: false, status: 403 });
  });

  it('accepts a GitLab request with the secret token and rejects a wrong one', () => {
    expect(verifyWebhook({ headers: { 'x-gitlab-token': secret }, body }, secret)).toEqual({ ok: true, provider: 'gitlab' });
    expect(verifyWebhook({ headers: { 'x-gitlab-token': `${secret}x` }, body }, secret)).toMatchObject({ ok: false, status: 403 });
    expect(verifyWebhook({ headers: { 'x-gitlab-token': '' }, body }, secret)).toMatchObject({ ok: false, status: 403 });
  });

  it('rejects unsigned requests when a secret is set', () => {
    const verdict = verifyWebhook({ headers: { 'content-type': 'application/json' }, body }, secret);
    expect(verdict).toMatchObject({ ok: false, status: 401 });
    expect(verifyWebhook({ headers: { 'x-hub-signature': 'sha1=abc' }, body }, secret)).toMatchObject({ ok: false, status: 401 });
  });

  it('accepts any request as generic when no secret is set', () => {
    expect(verifyWebhook({ headers: {}, body }, undefined)).toEqual({ ok: true, provider: 'generic' });
    expect(verifyWebhook({ headers: {}, body }, '')).toEqual({ ok: true, provider: 'generic' });
    expect(verifyWebhook({ headers: { 'x-hub-signature-256': sign(body) }, body }, undefined)).toEqual({ ok: true, provider: 'generic' });
    expect(verifyWebhook({ headers: { 'x-gitlab-token': 'whatever' }, body }, undefined)).toEqual({ ok: true, provider: 'generic' });
  });

  it('never echoes the secret in a reason', () => {
    const verdict = verifyWebhook({ headers: { 'x-gitlab-token': 'nope' }, body }, secret);
    expect(verdict.ok ? '' : verdict.reason).not.toContain(secret);
  });
});
