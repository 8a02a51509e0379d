import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { commitAll, gitInit, runCli, tempDir, writeTree } from '../../test/helpers.js';
import { generateKey } from '../secrets/age-keys.js';
import { encryptSops, parsePlain } from '../secrets/sops.js';

/** `keelson validate` decrypts the secret files the environments use when an age identity is set (bin/keelson: built). */
describe('keelson validate with secrets', () => {
  const tmp = tempDir('keelson-validate-secrets-');
  const ops = join(tmp.dir, 'ops');
  const keyFile = join(tmp.dir, 'age.txt');
  const otherKeyFile = join(tmp.dir, 'other.txt');
  const secretFile = join(ops, 'secrets/db.enc.yaml');
  const password = `pw-${randomBytes(8).toString('hex')}`;
  let encrypted: string;

  // The CLI's environment without any age identity of the machine running the tests.
  const env = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => {
    const e = { ...process.env, ...extra };
    for (const k of ['KEELSON_AGE_KEY', 'KEELSON_AGE_KEY_FILE', 'SOPS_AGE_KEY', 'SOPS_AGE_KEY_FILE']) if (!(k in extra)) delete e[k];
    return e;
  };
  const validate = (extra?: Record<string, string>) => {
    const r = runCli(['validate', '--repo', ops], { env: env(extra) });
    // Whatever happens, no decrypted value is printed.
    expect(r.stdout + r.stderr).not.toContain(password);
    return r;
  };
  const withKey = () => validate({ KEELSON_AGE_KEY_FILE: keyFile });

  const appYaml = (key: string) => `apiVersion: keelson.dev/v1alpha1
kind: App
metadata:
  name: web
spec:
  version: "1.0.0"
  artifact:
    path: ../releases/web
  run:
    command: ["node", "server.js"]
  secrets:
    env:
      - name: DB_PASSWORD
        file: ../secrets/db.enc.yaml
        key: ${key}
---
apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata:
  name: dev
spec:
  apps:
    web: {}
`;

  beforeAll(async () => {
    const key = await generateKey();
    writeFileSync(keyFile, key.file, { mode: 0o600 });
    writeFileSync(otherKeyFile, (await generateKey()).file, { mode: 0o600 });
    encrypted = await encryptSops(parsePlain(`user: app\npassword: ${password}\n`, 'yaml', 'db'), { format: 'yaml', recipients: [key.recipient] });
    writeTree(ops, {
      'apps/web.yaml': appYaml('password'),
      'releases/web/server.js': 'setInterval(() => {}, 1000);\n',
      'secrets/db.enc.yaml': encrypted,
    });
    gitInit(ops);
    commitAll(ops, 'web with a secret');
  });

  afterAll(() => tmp.cleanup());

  /** Changes a file of the working tree for one test (validate checks the working tree, as before a commit). */
  const edit = (path: string, text: string, original: string) => {
    writeFileSync(path, text);
    onTestFinished(() => writeFileSync(path, original));
  };

  it('without an age key, passes the rest and says in one line that secrets were not decrypted', () => {
    const r = validate();
    expect(r.code).toBe(0);
    const notes = r.stdout.split('\n').filter((l) => l.includes('not decrypted'));
    expect(notes).toEqual(['note: 1 secret file not decrypted: no age key is set; to check them, set KEELSON_AGE_KEY_FILE to an age identity file (or KEELSON_AGE_KEY, SOPS_AGE_KEY_FILE, SOPS_AGE_KEY)']);
    expect(r.stdout).toContain('ok: 1 environment(s), 1 app deployment(s)\n');
  });

  it('decrypts every secret file with KEELSON_AGE_KEY_FILE, or with sops’ own variables', () => {
    expect(withKey()).toMatchObject({ code: 0, stdout: 'ok: 1 environment(s), 1 app deployment(s), 1 secret file decrypted with KEELSON_AGE_KEY_FILE\n' });
    expect(validate({ SOPS_AGE_KEY_FILE: keyFile })).toMatchObject({ code: 0, stdout: expect.stringContaining('1 secret file decrypted with SOPS_AGE_KEY_FILE') });
    const identity = readFileSync(keyFile, 'utf8').split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-'))!;
    expect(validate({ SOPS_AGE_KEY: identity })).toMatchObject({ code: 0, stdout: expect.stringContaining('1 secret file decrypted with SOPS_AGE_KEY') });
  });

  it('reports a tampered value at its line:col in the secret file, with where it is referenced', () => {
    edit(secretFile, encrypted.replace(/(password: ENC\[AES256_GCM,data:)(.)/, (_m, p, c) => p + (c === 'A' ? 'B' : 'A')), encrypted);
    const r = withKey();
    expect(r.code).toBe(1);
    expect(r.stdout.trim().split('\n')).toEqual([expect.stringMatching(/^secrets\/db\.enc\.yaml:2:11: the value at password cannot be decrypted: .*\(referenced at apps\/web\.yaml:14:15\)$/)]);
    expect(r.stderr).toContain('1 problem found');
  });

  it('reports a MAC that does not verify at the MAC in the secret file', () => {
    const tampered = encrypted.replace(/lastmodified: "(\d{4})/, (_m, y) => `lastmodified: "${Number(y) - 1}`);
    expect(tampered).not.toBe(encrypted);
    edit(secretFile, tampered, encrypted);
    const r = withKey();
    const macLine = encrypted.split('\n').findIndex((l) => l.startsWith('    mac: ')) + 1;
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`^secrets/db\\.enc\\.yaml:${macLine}:10: MAC mismatch: `, 'm'));
  });

  it('reports a key that fits no recipient at file:1:1, and a bad key file as an error', () => {
    const wrong = validate({ KEELSON_AGE_KEY_FILE: otherKeyFile });
    expect(wrong.code).toBe(1);
    expect(wrong.stdout).toMatch(/^secrets\/db\.enc\.yaml:1:1: cannot decrypt the data key: none of the 1 age identities from KEELSON_AGE_KEY_FILE fits/m);
    const missing = validate({ KEELSON_AGE_KEY_FILE: join(tmp.dir, 'nope.txt') });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('cannot check that secret files decrypt: cannot read the age key file');
  });

  it('reports a key missing from the secret file at the reference, as the engine does', () => {
    edit(join(ops, 'apps/web.yaml'), appYaml('passwd'), appYaml('password'));
    const r = withKey();
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('apps/web.yaml:15:14: App "web" in environment "dev": secret env DB_PASSWORD: no key "passwd" in secrets/db.enc.yaml (keys: user, password)');
  });
});
