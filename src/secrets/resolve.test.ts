import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import { formatIssue } from '../core/types.js';
import { planEnvironment, formatPlan } from '../plan/plan.js';
import { renderRepository } from '../render/render.js';
import { templateHash } from '../targets/local/spec-hash.js';
import type { LiveApp } from '../targets/target.js';
import { generateKey, Keyring } from './age-keys.js';
import { checkoutReader, digestSecrets, secretDataFor, secretValuesFor } from './resolve.js';
import { encryptSops, parsePlain } from './sops.js';

const appDoc = (secrets: string) => `apiVersion: keelson.dev/v1alpha1
kind: App
metadata:
  name: web
spec:
  version: "1.0.0"
  artifact:
    path: ../releases/web
  run:
    command: ["node", "server.js"]
    env:
      GREETING: hi
  secrets:
${secrets}`;

const envDoc = (override = '') => `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata:
  name: dev
spec:
  apps:
    web:${override ? `\n${override}` : ' {}'}
`;

async function setup(files: Record<string, string>, secrets: Record<string, string>) {
  const key = await generateKey();
  const keyring = new Keyring([key.identity], 'test');
  const root = await mkdtemp(join(tmpdir(), 'keelson-secrets-'));
  onTestFinished(() => rm(root, { recursive: true, force: true }));
  const all: Record<string, string> = { 'releases/web/server.js': '', ...files };
  for (const [f, plain] of Object.entries(secrets)) {
    all[f] = await encryptSops(parsePlain(plain, f.endsWith('.env') ? 'dotenv' : 'yaml', f), { format: f.endsWith('.env') ? 'dotenv' : 'yaml', recipients: [key.recipient] });
  }
  for (const [f, text] of Object.entries(all)) {
    await mkdir(dirname(join(root, f)), { recursive: true });
    await writeFile(join(root, f), text);
  }
  const render = async () => {
    const r = await renderRepository({ root });
    const issues = r.issues.length ? r.issues : await digestSecrets(r.desired, root, { keyring });
    return { desired: r.desired, messages: issues.map(formatIssue) };
  };
  return { root, keyring, recipient: key.recipient, render };
}

describe('secret references', () => {
  test('env vars and files resolve to references with keyed digests; the values arrive only at apply time', async () => {
    const s = await setup(
      {
        'apps/web.yaml': appDoc('    env:\n      - { name: DB_PASSWORD, file: ../secrets/db.enc.yaml, key: password }\n      - { name: DB_PORT, file: ../secrets/db.enc.yaml, key: db.port }\n    files:\n      - { file: ../secrets/app.env, path: config/app.env }\n'),
        'environments/dev.yaml': envDoc(),
      },
      { 'secrets/db.enc.yaml': 'password: s3cr3t\ndb:\n  port: 5432\n', 'secrets/app.env': 'TOKEN=t0k3n\n' },
    );
    const { desired, messages } = await s.render();
    expect(messages).toEqual([]);
    const web = desired.environments[0].apps[0];
    expect(web.secrets).toEqual({
      env: {
        DB_PASSWORD: { file: 'secrets/db.enc.yaml', key: 'password', digest: expect.stringMatching(/^hmac-sha256:[0-9a-f]{32}$/) },
        DB_PORT: { file: 'secrets/db.enc.yaml', key: 'db.port', digest: expect.stringMatching(/^hmac-sha256:/) },
      },
      files: { 'config/app.env': { file: 'secrets/app.env', digest: expect.stringMatching(/^hmac-sha256:/) } },
    });
    expect(JSON.stringify(desired)).not.toMatch(/s3cr3t|t0k3n|5432/);
    const values = await secretValuesFor(web, checkoutReader(s.root), { keyring: s.keyring });
    expect(values.env).toEqual({ DB_PASSWORD: 's3cr3t', DB_PORT: '5432' });
    expect(values.files.map((f) => [f.path, f.content.toString()])).toEqual([['config/app.env', 'TOKEN=t0k3n\n']]);
    expect(await secretDataFor(web, s.root, { keyring: s.keyring })).toEqual({ env: { DB_PASSWORD: 's3cr3t', DB_PORT: '5432' }, files: { 'config_app.env': 'TOKEN=t0k3n\n' } });
  });

  test('a changed value changes the template; keelson diff shows digests, never values', async () => {
    const s = await setup({ 'apps/web.yaml': appDoc('    env:\n      - { name: DB_PASSWORD, file: ../secrets/db.enc.yaml, key: password }\n'), 'environments/dev.yaml': envDoc() }, { 'secrets/db.enc.yaml': 'password: old-value\n' });
    const before = (await s.render()).desired.environments[0];
    await writeFile(join(s.root, 'secrets/db.enc.yaml'), await encryptSops(parsePlain('password: new-value\n', 'yaml', 'f'), { format: 'yaml', recipients: [s.recipient] }));
    const after = (await s.render()).desired.environments[0];
    const liveSpec = before.apps[0];
    expect(templateHash(after.apps[0])).not.toBe(templateHash(liveSpec));
    const live: LiveApp = { name: 'web', spec: liveSpec, template: templateHash(liveSpec), version: '1.0.0', revision: 'r1', health: 'Healthy', message: '', replicas: { desired: 1, ready: 1, total: 1, updated: 1 }, instances: [], intact: true };
    const plan = planEnvironment({ desired: after, revision: 'r2', live: [live], inventory: ['web'], failures: [], templateOf: templateHash });
    const text = formatPlan(plan);
    expect(text).toMatch(/update\s+web .*secrets\.env\.DB_PASSWORD\.digest/s);
    expect(text).toMatch(/"hmac-sha256:[0-9a-f]+" → "hmac-sha256:[0-9a-f]+"/);
    expect(text).not.toMatch(/old-value|new-value/);
  });

  test('an environment overrides secrets by env name and file path, with paths relative to its own file', async () => {
    const s = await setup(
      {
        'apps/web.yaml': appDoc('    env:\n      - { name: DB_PASSWORD, file: ../secrets/db.enc.yaml, key: password }\n'),
        'environments/dev.yaml': envDoc('      secrets:\n        env:\n          - { name: DB_PASSWORD, file: ../secrets/dev/db.enc.yaml, key: password }'),
      },
      { 'secrets/db.enc.yaml': 'password: prod\n', 'secrets/dev/db.enc.yaml': 'password: dev\n' },
    );
    const { desired, messages } = await s.render();
    expect(messages).toEqual([]);
    const web = desired.environments[0].apps[0];
    expect(web.secrets!.env.DB_PASSWORD.file).toBe('secrets/dev/db.enc.yaml');
    expect((await secretValuesFor(web, checkoutReader(s.root), { keyring: s.keyring })).env).toEqual({ DB_PASSWORD: 'dev' });
  });

  test('mistakes are issues at file:line:col', async () => {
    const s = await setup(
      {
        'apps/web.yaml': appDoc(
          [
            '    env:',
            '      - name: DB_PASSWORD', // 15
            '        file: ../secrets/db.enc.yaml',
            '        key: pasword', // 17
            '      - name: GREETING', // 18
            '        file: ../secrets/db.enc.yaml',
            '        key: password',
            '      - name: MISSING',
            '        file: ../secrets/nope.enc.yaml', // 22
            '        key: x',
            '      - name: OUTSIDE',
            '        file: ../../etc/passwd', // 25
            '        key: x',
            '    files:',
            '      - { file: ../secrets/db.enc.yaml, path: ../escape }', // 28
            '',
          ].join('\n'),
        ),
        'environments/dev.yaml': envDoc(),
      },
      { 'secrets/db.enc.yaml': 'password: s3cr3t\n' },
    );
    const schema = (await s.render()).messages;
    expect(schema).toEqual([expect.stringMatching(/^apps\/web\.yaml:28:\d+: .*relative path below the secrets dir/)]);
    await writeFile(join(s.root, 'apps/web.yaml'), (await import('node:fs')).readFileSync(join(s.root, 'apps/web.yaml'), 'utf8').replace('path: ../escape', 'path: ok'));
    const messages = (await s.render()).messages;
    expect(messages).toEqual([
      expect.stringMatching(/^apps\/web\.yaml:18:\d+: App "web": GREETING is set both by run\.env and by secrets\.env/),
      expect.stringMatching(/^apps\/web\.yaml:25:15: secret file "\.\.\/\.\.\/etc\/passwd" resolves to .* outside the repository root/),
    ]);
    await writeFile(join(s.root, 'apps/web.yaml'), (await import('node:fs')).readFileSync(join(s.root, 'apps/web.yaml'), 'utf8').replace('name: GREETING', 'name: OTHER').replace('../../etc/passwd', '../secrets/db.enc.yaml'));
    expect((await s.render()).messages).toEqual([
      'apps/web.yaml:17:14: App "web" in environment "dev": secret env DB_PASSWORD: no key "pasword" in secrets/db.enc.yaml (keys: password)',
      'apps/web.yaml:22:15: App "web" in environment "dev": secret file secrets/nope.enc.yaml does not exist; commit it (encrypted with `keelson secret encrypt`)',
      'apps/web.yaml:26:14: App "web" in environment "dev": secret env OUTSIDE: no key "x" in secrets/db.enc.yaml (keys: password)',
    ]);
  });

  test('without an identity the engine says how to configure one', async () => {
    const s = await setup({ 'apps/web.yaml': appDoc('    env:\n      - { name: A, file: ../secrets/db.enc.yaml, key: password }\n'), 'environments/dev.yaml': envDoc() }, { 'secrets/db.enc.yaml': 'password: x\n' });
    const r = await renderRepository({ root: s.root });
    const issues = await digestSecrets(r.desired, s.root, { keyring: new Keyring([], 'none') });
    expect(issues.map(formatIssue)).toEqual([expect.stringMatching(/^apps\/web\.yaml:15:\d+: .*no age identity is configured; set KEELSON_AGE_KEY or KEELSON_AGE_KEY_FILE/)]);
  });
});
