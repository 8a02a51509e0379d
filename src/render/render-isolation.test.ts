import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import { formatIssue } from '../core/types.js';
import { renderRepository } from './render.js';
import { formatBytes, formatMillicores, parseQuantity } from './schema-isolation.js';

async function render(files: Record<string, string>, opts: { hostChecks?: boolean } = {}) {
  const root = await mkdtemp(join(tmpdir(), 'keelson-render-iso-'));
  onTestFinished(() => rm(root, { recursive: true, force: true }));
  for (const [file, text] of Object.entries(files)) {
    await mkdir(dirname(join(root, file)), { recursive: true });
    await writeFile(join(root, file), text);
  }
  const res = await renderRepository({ root, ...opts });
  return { ...res, messages: res.issues.map(formatIssue) };
}

/** An App on the local target; `extra` lines (2-space indented spec fields) start at line 11. */
const app = (extra: string) =>
  `apiVersion: keelson.dev/v1alpha1
kind: App
metadata:
  name: web
spec:
  version: "1.0.0"
  artifact:
    path: releases/web
  run:
    command: [node, server.js]
${extra}`;

/** An Environment; its entry for web (4-space indented fields) starts at line 8. */
const env = (target: string, entry = '') =>
  `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata:
  name: prod
spec:
  target: ${target}
  apps:
    web:${entry ? `\n${entry}` : ' {}'}
`;

describe('quantities', () => {
  test('Kubernetes suffixes, plain numbers and exponents', () => {
    expect(parseQuantity('256Mi')).toBe(256 * 2 ** 20);
    expect(parseQuantity('1.5Gi')).toBe(1.5 * 2 ** 30);
    expect(parseQuantity('1G')).toBe(1e9);
    expect(parseQuantity('500m')).toBe(0.5);
    expect(parseQuantity('2')).toBe(2);
    expect(parseQuantity('1e3')).toBe(1000);
    expect(parseQuantity(1024)).toBe(1024);
    for (const bad of ['256MB', '', 'Mi', '-1', '1..2', '12 Mi']) expect(parseQuantity(bad)).toBeUndefined();
    expect(formatBytes(256 * 2 ** 20)).toBe('256Mi');
    expect(formatBytes(1000)).toBe('1000');
    expect(formatMillicores(500)).toBe('500m');
    expect(formatMillicores(2000)).toBe('2');
  });
});

describe('user and resources', () => {
  test('render to canonical units; the environment overrides the user and each limit', async () => {
    const { desired, messages } = await render(
      {
        'web.yaml': app('  user: nobody\n  resources: {memory: 256Mi, cpu: 500m, pids: 200}\n'),
        'prod.yaml': env('{local: {}}', '      user: {name: root, group: nogroup}\n      resources: {cpu: "2", openFiles: 4096}'),
      },
      { hostChecks: false },
    );
    expect(messages).toEqual([]);
    const web = desired.environments[0].apps[0];
    expect(web.user).toEqual({ name: 'root', group: 'nogroup' });
    expect(web.resources).toEqual({ memory: 256 * 2 ** 20, cpu: 2000, pids: 200, openFiles: 4096 });
  });

  test('a bad quantity, a bad user name and a too small limit are errors at their file:line:col', async () => {
    const { messages } = await render({
      'web.yaml': app('  user: Web User\n  resources:\n    memory: 256MB\n    cpu: 1m\n    pids: 0\n'),
      'prod.yaml': env('{local: {}}'),
    });
    expect(messages).toEqual([
      expect.stringMatching(/^web\.yaml:11:9: App "web": spec.user: must be a system user or group name/),
      expect.stringMatching(/^web\.yaml:13:13: App "web": spec.resources\.memory: "256MB" is not a quantity; write bytes with a suffix, e\.g\. "256Mi"/),
      expect.stringMatching(/^web\.yaml:14:10: App "web": spec.resources\.cpu: cpu "1m" is out of range; .*at least 10m/),
      expect.stringMatching(/^web\.yaml:15:11: App "web": spec.resources\.pids: must be at least 1/),
    ]);
  });

  test('an unknown user is an error at the user: that names it (App or environment entry)', async () => {
    const inApp = await render({ 'web.yaml': app('  user: keelson-no-such-user\n'), 'prod.yaml': env('{local: {}}') });
    expect(inApp.messages).toEqual([
      'web.yaml:11:9: app "web" in environment "prod": user "keelson-no-such-user" does not exist on this machine; create it (e.g. useradd --system --no-create-home keelson-no-such-user) or change "user:"',
    ]);
    const inEnv = await render({ 'web.yaml': app('  user: root\n'), 'prod.yaml': env('{local: {}}', '      user: {name: root, group: keelson-no-such-group}') });
    expect(inEnv.messages).toEqual([
      expect.stringMatching(/^prod\.yaml:9:13: app "web" in environment "prod": group "keelson-no-such-group" does not exist on this machine/),
    ]);
    // Elsewhere (an ops repo's CI), validate skips host checks on request.
    const skipped = await render({ 'web.yaml': app('  user: keelson-no-such-user\n'), 'prod.yaml': env('{local: {}}') }, { hostChecks: false });
    expect(skipped.messages).toEqual([]);
  });

  test("in a Kubernetes environment's entry they are errors; the App's own stay for its local environments", async () => {
    const { messages } = await render({
      'web.yaml': app('  image: ghcr.io/acme/web\n  user: root\n  resources: {memory: 1Gi}\n'),
      'prod.yaml': env('{kubernetes: {namespace: prod}}', '      user: root\n      resources: {memory: 1Gi}'),
      'dev.yaml': env('{local: {}}').replace('name: prod', 'name: dev'),
    });
    expect(messages).toEqual([
      expect.stringMatching(/^prod\.yaml:9:7: "user" applies to the local target; environment "prod" runs on Kubernetes \(set securityContext\.runAsUser/),
      expect.stringMatching(/^prod\.yaml:10:7: "resources" applies to the local target/),
    ]);
    const ok = await render({
      'web.yaml': app('  image: ghcr.io/acme/web\n  user: root\n  resources: {memory: 1Gi}\n'),
      'prod.yaml': env('{kubernetes: {namespace: prod}}'),
      'dev.yaml': env('{local: {}}').replace('name: prod', 'name: dev'),
    });
    expect(ok.messages).toEqual([]);
    const byEnv = Object.fromEntries(ok.desired.environments.map((e) => [e.name, e.apps[0]]));
    expect(byEnv.dev.user).toEqual({ name: 'root' });
    expect(byEnv.prod.user).toBeUndefined();
    expect(byEnv.prod.resources).toBeUndefined();
  });
});
