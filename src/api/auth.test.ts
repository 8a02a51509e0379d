import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers.js';
import { Authenticator, compilePolicies, generateToken, hashToken, matchPolicy, readTokensFile, tokensFromEnv } from './auth.js';

describe('auth', () => {
  const tmp = tempDir('keelson-auth-');
  afterAll(() => tmp.cleanup());

  it('reads a tokens file of hashes and reports mistakes at file:line:col', () => {
    const good = join(tmp.dir, 'good.yaml');
    writeFileSync(good, `tokens:\n  - name: alice\n    role: admin\n    sha256: ${hashToken('t1')}\n`);
    expect(readTokensFile(good)).toEqual([{ name: 'alice', role: 'admin', sha256: hashToken('t1') }]);
    const bad = join(tmp.dir, 'bad.yaml');
    writeFileSync(bad, `tokens:\n  - name: bob\n    role: root\n    sha256: plaintext-token\n`);
    expect(() => readTokensFile(bad)).toThrow(`${bad}:3:11: tokens file: tokens[0].role`);
    expect(() => readTokensFile(bad)).toThrow(/4:13: tokens file: tokens\[0\]\.sha256: must be the hex sha256 of the token/);
    const dup = join(tmp.dir, 'dup.yaml');
    writeFileSync(dup, `tokens:\n  - { name: a, role: viewer, sha256: ${hashToken('x')} }\n  - { name: a, role: admin, sha256: ${hashToken('y')} }\n`);
    expect(() => readTokensFile(dup)).toThrow('token name "a" appears twice');
  });

  it('takes plaintext tokens from environment variables and keeps only their hashes', () => {
    const [a1, v1, v2] = ['a1', 'v1', 'v2'].map((p) => p.padEnd(32, '-0123456789'));
    const tokens = tokensFromEnv({ KEELSON_TOKEN_ADMIN: a1, KEELSON_TOKEN_VIEWER: `${v1}, ${v2}` });
    expect(tokens).toEqual([
      { name: 'viewer-1', role: 'viewer', sha256: hashToken(v1) },
      { name: 'viewer-2', role: 'viewer', sha256: hashToken(v2) },
      { name: 'admin', role: 'admin', sha256: hashToken(a1) },
    ]);
    expect(JSON.stringify(tokens)).not.toContain(a1);
  });

  it('refuses a token from the environment shorter than 32 characters, naming the variable and not the token', () => {
    const short = 'hunter2-short-token';
    expect(() => tokensFromEnv({ KEELSON_TOKEN_OPERATOR: `${'o'.repeat(40)},${short}` })).toThrow(
      'KEELSON_TOKEN_OPERATOR: token 2 has 19 characters; API tokens must have at least 32 (a short token can be guessed). Create one with `keelson token create`.',
    );
    try {
      tokensFromEnv({ KEELSON_TOKEN_ADMIN: short });
    } catch (err) {
      expect((err as Error).message).not.toContain(short);
    }
  });

  it('orders roles viewer < operator < admin and says why a request is refused', () => {
    const op = generateToken();
    expect(op).toMatch(/^kls_[A-Za-z0-9_-]{43}$/);
    const auth = new Authenticator([{ name: 'olga', role: 'operator', sha256: hashToken(op) }]);
    expect(auth.authorize(`Bearer ${op}`, 'viewer')).toEqual({ name: 'olga', role: 'operator', anonymous: false });
    expect(auth.authorize(`bearer ${op}`, 'operator')).toMatchObject({ name: 'olga' });
    expect(auth.authorize(`Bearer ${op}`, 'admin')).toEqual({ status: 403, message: 'token "olga" has role operator; this needs admin' });
    expect(auth.authorize(undefined, 'viewer')).toMatchObject({ status: 401 });
    expect(auth.authorize(`Basic ${op}`, 'viewer')).toMatchObject({ status: 401 });
    const open = new Authenticator([]);
    expect(open.authorize(undefined, 'viewer')).toEqual({ name: 'anonymous', role: 'viewer', anonymous: true });
    expect(open.authorize('Bearer whatever', 'operator')).toMatchObject({ status: 403, message: expect.stringContaining('read-only') });
  });

  it('matches a request to its route policy; literal segments win over parameters', () => {
    const compiled = compilePolicies({
      'GET /api/v1/environments/:env/apps/:app': { access: 'viewer' },
      'POST /api/v1/environments/:env/apps/:app/pause': { access: 'operator', action: 'pause' },
      'GET /ui/:file': { access: 'public' },
      'GET /ui/app.js': { access: 'admin' },
    });
    expect(matchPolicy(compiled, 'GET', '/api/v1/environments/dev/apps/web')?.policy.access).toBe('viewer');
    expect(matchPolicy(compiled, 'HEAD', '/api/v1/environments/dev/apps/web')?.policy.access).toBe('viewer');
    expect(matchPolicy(compiled, 'POST', '/api/v1/environments/dev/apps/web/pause')?.policy.action).toBe('pause');
    expect(matchPolicy(compiled, 'GET', '/api/v1/environments/dev/apps/web/extra')).toBeUndefined();
    expect(matchPolicy(compiled, 'GET', '/ui/app.js')?.policy.access).toBe('admin');
    expect(matchPolicy(compiled, 'GET', '/ui/style.css')?.policy.access).toBe('public');
  });
});
