import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { logRedaction, redactCredentials, redactUrl } from './redact.js';

function capture() {
  const lines: string[] = [];
  const out = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { log: pino({ level: 'info', ...logRedaction() }, out), lines };
}

describe('credential redaction', () => {
  it('drops the userinfo of every URL in a text, and nothing else', () => {
    expect(redactCredentials("fatal: unable to access 'https://user:s3cret@example.com/o/r.git/'")).toBe("fatal: unable to access 'https://***@example.com/o/r.git/'");
    expect(redactCredentials('https://ghp_token@github.com/o/r and http://a:b@h:8080/x')).toBe('https://***@github.com/o/r and http://***@h:8080/x');
    expect(redactCredentials('git@github.com:o/r.git')).toBe('git@github.com:o/r.git');
    expect(redactUrl('https://u:p@hooks.example.com/x?token=1')).toBe('https://hooks.example.com/x?…');
  });

  it('keeps credentials out of log lines: URLs in any field and in child bindings, secret fields censored', () => {
    const { log, lines } = capture();
    log.child({ repo: 'https://bot:ghp_abc123@github.com/acme/ops.git' }).info({ listen: '127.0.0.1:7070', err: "could not read 'https://x:tok@h/r'" }, 'keelson started');
    log.info({ token: 'kt_secret_value', headers: { authorization: 'Bearer kt_secret_value' }, req: { password: 'hunter22' } }, 'request');
    const text = lines.join('');
    expect(text).not.toContain('ghp_abc123');
    expect(text).not.toContain(':tok@');
    expect(text).not.toContain('kt_secret_value');
    expect(text).not.toContain('hunter22');
    expect(text).toContain('https://***@github.com/acme/ops.git');
    expect(text).toContain('127.0.0.1:7070');
  });
});
