import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import { formatIssue } from '../core/types.js';
import { renderRepository } from './render.js';

async function render(files: Record<string, string>, envs?: string[]) {
  const root = await mkdtemp(join(tmpdir(), 'keelson-render-tls-'));
  onTestFinished(() => rm(root, { recursive: true, force: true }));
  for (const [file, text] of Object.entries(files)) {
    await mkdir(dirname(join(root, file)), { recursive: true });
    await writeFile(join(root, file), text);
  }
  const res = await renderRepository({ root, ...(envs ? { envs } : {}) });
  return { ...res, messages: res.issues.map(formatIssue) };
}

const app = (name: string, extra: string) =>
  `apiVersion: keelson.dev/v1alpha1
kind: App
metadata:
  name: ${name}
spec:
  version: "1.0.0"
  artifact: {path: rel}
  run: {command: [node, server.js]}
${extra}`;

const env = (name: string, apps: string) =>
  `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata:
  name: ${name}
spec:
  target: {local: {}}
  apps:
${apps}`;

describe('hosts and tls', () => {
  test('the App gives hosts and ACME; an environment overrides them; HSTS true is one year', async () => {
    const r = await render({
      'apps/shop.yaml': app('shop', '  hosts: [Shop.Example.com, www.example.com]\n  tls:\n    acme: {email: ops@example.com, caFile: ../ca/pebble.pem}\n    hsts: true\n'),
      'ca/pebble.pem': 'x',
      'prod.yaml': env('prod', '    shop: {}\n'),
      'staging.yaml': env('staging', '    shop:\n      hosts: [shop.staging.example.com]\n      tls: {acme: {email: ops@example.com, directory: "https://acme-staging-v02.api.letsencrypt.org/directory"}}\n'),
    });
    expect(r.messages).toEqual([]);
    const [prod, staging] = ['prod', 'staging'].map((n) => r.desired.environments.find((e) => e.name === n)!.apps[0]);
    expect(prod.hosts).toEqual(['shop.example.com', 'www.example.com']);
    expect(prod.tls).toEqual({ acme: { email: 'ops@example.com', directory: 'https://acme-v02.api.letsencrypt.org/directory', caFile: 'ca/pebble.pem' }, hstsMaxAgeSeconds: 31536000 });
    expect(staging.hosts).toEqual(['shop.staging.example.com']);
    expect(staging.tls).toEqual({ acme: { email: 'ops@example.com', directory: 'https://acme-staging-v02.api.letsencrypt.org/directory' } });
  });

  test('one App in two environments needs its own hosts in each: the message says where', async () => {
    const r = await render({
      'apps/shop.yaml': app('shop', '  hosts: [shop.example.com]\n'),
      'prod.yaml': env('prod', '    shop: {}\n'),
      'staging.yaml': env('staging', '    shop: {}\n'),
    });
    expect(r.messages).toEqual([
      'apps/shop.yaml:9:11: host shop.example.com of app "shop" in environment "prod" is also claimed by app "shop" of environment "staging" (apps/shop.yaml:9:11); one host name routes to one app; give the app its own hosts in each environment (spec.apps.shop.hosts of the Environment)',
      'apps/shop.yaml:9:11: host shop.example.com of app "shop" in environment "staging" is also claimed by app "shop" of environment "prod" (apps/shop.yaml:9:11); one host name routes to one app; give the app its own hosts in each environment (spec.apps.shop.hosts of the Environment)',
    ]);
    const fixed = await render({
      'apps/shop.yaml': app('shop', '  hosts: [shop.example.com]\n'),
      'prod.yaml': env('prod', '    shop: {}\n'),
      'staging.yaml': env('staging', '    shop: {hosts: [shop.staging.example.com]}\n'),
    });
    expect(fixed.messages).toEqual([]);
  });

  test('a static certificate becomes two secret references of the app', async () => {
    const r = await render({
      'apps/shop.yaml': app('shop', '  hosts: [shop.example.com]\n  tls:\n    certificate:\n      cert: {file: ../tls/shop.sops.yaml, key: cert}\n      key: {file: ../tls/shop.sops.yaml, key: key}\n'),
      'prod.yaml': env('prod', '    shop: {}\n'),
    });
    expect(r.messages).toEqual([]);
    const shop = r.desired.environments[0].apps[0];
    expect(shop.tls).toEqual({ certificate: { cert: 'tls/shop.sops.yaml#cert', key: 'tls/shop.sops.yaml#key' } });
    expect(shop.secrets?.files).toEqual({ '.keelson-tls/cert.pem': { file: 'tls/shop.sops.yaml', key: 'cert' }, '.keelson-tls/key.pem': { file: 'tls/shop.sops.yaml', key: 'key' } });
  });

  test('bad input: malformed host, one host claimed by two apps across environments, tls without hosts, both acme and certificate', async () => {
    const r = await render({
      'apps/shop.yaml': app('shop', '  hosts: [shop.example.com]\n'),
      'apps/blog.yaml': app('blog', '  hosts: ["https://blog.example.com"]\n'),
      'apps/api.yaml': app('api', '  tls: {acme: {email: ops@example.com}}\n'),
      'apps/docs.yaml': app('docs', '  hosts: [docs.example.com]\n  tls:\n    acme: {email: ops@example.com}\n    certificate: {cert: {file: a, key: c}, key: {file: a, key: k}}\n'),
      'prod.yaml': env('prod', '    shop: {}\n    api: {}\n'),
      'staging.yaml': env('staging', '    other: {}\n'),
      'apps/other.yaml': app('other', '  hosts: [www.example.com, shop.example.com]\n'),
    });
    expect(r.messages).toEqual([
      'apps/api.yaml:9:3: App "api" in environment "prod" has tls but no hosts; add spec.hosts (the names the certificate is for)',
      'apps/blog.yaml:9:11: App "blog": spec.hosts[0]: must be a DNS name like app.example.com (letters, digits, "-" and ".", no wildcard, no port, no scheme)',
      'apps/docs.yaml:10:3: App "docs": spec.tls: needs exactly one of "acme", "certificate", found "acme" and "certificate"',
      'apps/other.yaml:9:28: host shop.example.com of app "other" in environment "staging" is also claimed by app "shop" of environment "prod" (apps/shop.yaml:9:11); one host name routes to one app',
      'apps/shop.yaml:9:11: host shop.example.com of app "shop" in environment "prod" is also claimed by app "other" of environment "staging" (apps/other.yaml:9:28); one host name routes to one app',
    ]);
  });
});
