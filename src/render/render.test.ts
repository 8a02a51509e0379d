import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import { formatIssue } from '../core/types.js';
import { parseYaml } from './load.js';
import { renderDocuments, renderRepository } from './render.js';

/** Strip the common indentation of a template literal, so fixture line numbers are what they look like. */
function y(strings: TemplateStringsArray, ...values: unknown[]): string {
  const text = String.raw({ raw: strings }, ...values).replace(/^\n/, '');
  const indent = Math.min(...text.split('\n').filter((l) => l.trim()).map((l) => l.match(/^ */)![0].length));
  return text
    .split('\n')
    .map((l) => l.slice(indent))
    .join('\n');
}

async function writeRepo(files: Record<string, string>): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'keelson-render-'));
  onTestFinished(() => rm(root, { recursive: true, force: true }));
  for (const [file, text] of Object.entries(files)) {
    await mkdir(dirname(join(root, file)), { recursive: true });
    await writeFile(join(root, file), text);
  }
  return root;
}

async function render(files: Record<string, string>, opts: { envs?: string[]; path?: string } = {}) {
  const root = await writeRepo(files);
  const res = await renderRepository({ root, ...opts });
  return { root, ...res, messages: res.issues.map(formatIssue) };
}

/** An App document; line 11 is the port (when given) or the first line of `extra`. */
const app = (name: string, extra = '', port?: number) =>
  [
    'apiVersion: keelson.dev/v1alpha1',
    'kind: App',
    'metadata:',
    `  name: ${name}`,
    'spec:',
    '  version: "1.0.0"',
    '  artifact:',
    `    path: releases/${name}-{version}`,
    '  run:',
    '    command: [node, server.js]',
    ...(port === undefined ? [] : [`  port: ${port}`]),
    '',
  ].join('\n') + extra;

/** An Environment document on the local target; `apps` (4-space indented entries) starts at line 9. */
const env = (name: string, apps: string) =>
  [
    'apiVersion: keelson.dev/v1alpha1',
    'kind: Environment',
    'metadata:',
    `  name: ${name}`,
    'spec:',
    '  target:',
    '    local: {}',
    '  apps:',
    '',
  ].join('\n') + apps;

describe('renderRepository: happy path', () => {
  test('applies environment overrides and fills in defaults', async () => {
    const { root, desired, issues } = await render({
      'apps/web.yaml': y`
        # yaml-language-server: $schema=../schema.json
        apiVersion: keelson.dev/v1alpha1
        kind: App
        metadata:
          name: web
        spec:
          version: "1.0.0"
          artifact:
            path: ../releases/web-{version}
          run:
            command: ["node", "server.js"]
            env:
              LOG_LEVEL: info
              WORKERS: 4
              DEBUG: false
          port: 8080
          readiness:
            http: { path: /healthz }
          liveness:
            tcp: {}
            failureThreshold: 5
          dependsOn: [db]
      `,
      'apps/db.yaml': y`
        apiVersion: keelson.dev/v1alpha1
        kind: App
        metadata: { name: db }
        spec:
          version: "15"
          artifact:
            url: https://example.com/db-{version}.tar.gz
            sha256: ${'AB'.repeat(32)}
          run: { command: [./db] }
          replicas: 0
      `,
      'envs/prod.yaml': y`
        apiVersion: keelson.dev/v1alpha1
        kind: Environment
        metadata:
          name: prod
        spec:
          target:
            local: {}
          apps:
            web:
              version: "1.1.0"
              replicas: 3
              env: { LOG_LEVEL: warn, REGION: eu }
            db: {}
      `,
    });
    expect(issues).toEqual([]);
    expect(desired.environments).toHaveLength(1);
    const [prod] = desired.environments;
    expect(prod.name).toBe('prod');
    expect(prod.target).toEqual({ local: {} });
    expect(prod.source).toEqual({ file: 'envs/prod.yaml', line: 1, col: 1 });
    expect(prod.apps.map((a) => a.name)).toEqual(['db', 'web']);
    expect(prod.apps[1]).toEqual({
      name: 'web',
      env: 'prod',
      version: '1.1.0',
      artifact: { path: join(root, 'releases/web-1.1.0') },
      command: ['node', 'server.js'],
      vars: { LOG_LEVEL: 'warn', WORKERS: '4', DEBUG: 'false', REGION: 'eu' },
      replicas: 3,
      port: 8080,
      readiness: {
        http: { path: '/healthz' },
        initialDelaySeconds: 0,
        periodSeconds: 10,
        timeoutSeconds: 1,
        failureThreshold: 3,
        successThreshold: 1,
      },
      liveness: {
        tcp: {},
        initialDelaySeconds: 0,
        periodSeconds: 10,
        timeoutSeconds: 1,
        failureThreshold: 5,
        successThreshold: 1,
      },
      dependsOn: ['db'],
      progressDeadlineSeconds: 60,
      terminationGracePeriodSeconds: 30,
      source: { file: 'apps/web.yaml', line: 2, col: 1 },
    });
    expect(prod.apps[0]).toMatchObject({
      name: 'db',
      artifact: { url: 'https://example.com/db-15.tar.gz', sha256: 'ab'.repeat(32) },
      replicas: 0,
      vars: {},
    });
    expect(prod.apps[0]).not.toHaveProperty('port');
    expect(prod.apps[0]).not.toHaveProperty('readiness');
  });

  test('an environment runs exactly the apps it lists; a null entry means no overrides', async () => {
    const { desired, issues } = await render({
      'apps.yaml': [app('a'), app('b'), app('c')].join('---\n'),
      'envs.yaml': [env('dev', '    a:\n    c:\n'), env('empty', ''), env('all', '    a: null\n    b: {}\n    c:\n')].join('---\n'),
    });
    expect(issues).toEqual([]);
    expect(desired.environments.map((e) => [e.name, e.apps.map((a) => a.name)])).toEqual([
      ['all', ['a', 'b', 'c']],
      ['dev', ['a', 'c']],
      ['empty', []],
    ]);
  });

  test('orders apps dependencies first, then by name', async () => {
    const { desired, issues } = await render({
      'apps.yaml': [
        app('web', '  dependsOn: [api, cache]\n'),
        app('api', '  dependsOn: [db]\n'),
        app('db'),
        app('cache'),
        app('admin', '  dependsOn: [db]\n'),
        app('zeta'),
      ].join('---\n'),
      'env.yaml': env('dev', ['web', 'api', 'db', 'cache', 'admin', 'zeta'].map((n) => `    ${n}:\n`).join('')),
    });
    expect(issues).toEqual([]);
    expect(desired.environments[0].apps.map((a) => a.name)).toEqual(['cache', 'db', 'zeta', 'admin', 'api', 'web']);
  });

  test('ignores YAML that is not a keelson.dev document', async () => {
    const { desired, issues } = await render({
      'apps.yaml': app('a'),
      'env.yaml': env('dev', '    a:\n'),
      'k8s.yaml': 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n---\n- a list\n---\nplain: true\n',
      'chart/templates/deploy.yaml': 'apiVersion: v1\nkind: {{ .Values.kind }}\n  : bad: [\n',
    });
    expect(issues).toEqual([]);
    expect(desired.environments).toHaveLength(1);
  });

  test('renderDocuments is a function of the parsed documents alone', () => {
    const docs = [...parseYaml('ops/apps.yaml', app('web', '', 8080)).docs, ...parseYaml('ops/env.yaml', env('dev', '    web: { port: 9090 }\n')).docs];
    const a = renderDocuments(docs, { root: '/repo' });
    const b = renderDocuments(docs, { root: '/repo' });
    expect(a).toEqual(b);
    expect(a.issues).toEqual([]);
    expect(a.desired.environments[0].apps[0]).toMatchObject({ port: 9090, artifact: { path: '/repo/ops/releases/web-1.0.0' } });
    // Results share nothing mutable: changing one leaves the next render alone.
    a.desired.environments[0].apps[0].command.push('--oops');
    a.desired.environments[0].apps[0].vars.X = 'y';
    expect(renderDocuments(docs, { root: '/repo' })).toEqual(b);
  });

  test('renders only the environments asked for', async () => {
    const { desired, messages } = await render(
      {
        'apps.yaml': app('a'),
        'envs.yaml': [env('dev', '    a:\n'), env('prod', '    a:\n    missing:\n')].join('---\n'),
      },
      { envs: ['dev', 'stage'] },
    );
    expect(desired.environments.map((e) => e.name)).toEqual(['dev']);
    // prod's own problem is not reported when rendering dev; an unknown environment is.
    expect(messages).toMatchInlineSnapshot(`
      [
        ".:1:1: no Environment named "stage" in the repository (environments: dev, prod)",
      ]
    `);
  });
});

describe('renderRepository: issues at file:line:col', () => {
  test('schema errors point at the offending node', async () => {
    const { messages, desired } = await render({
      'apps/web.yaml': y`
        apiVersion: keelson.dev/v1alpha1
        kind: App
        metadata:
          name: Web_1
        spec:
          version: 1.10
          artifact:
            path: ../x
            url: https://example.com/x.zip
          run:
            command: []
            env: { A: [1] }
          replica: 2
          port: 70000
          readiness:
            periodSeconds: 0
          dependsOn: [db]
      `,
      'env.yaml': env('dev', '    Web_1:\n'),
    });
    expect(desired.environments).toEqual([]);
    expect(messages).toMatchInlineSnapshot(`
      [
        "apps/web.yaml:4:9: App "Web_1": metadata.name: must be lowercase letters, digits and "-", starting and ending with a letter or digit",
        "apps/web.yaml:6:12: App "Web_1": spec.version: must be a string; quote it ("1.10"), as YAML reads an unquoted 1.10 as a number",
        "apps/web.yaml:7:3: App "Web_1": spec.artifact: needs exactly one of "path", "url", found "path" and "url"",
        "apps/web.yaml:9:10: App "Web_1": spec.artifact.url: must be an http(s) URL of a .tar.gz file",
        "apps/web.yaml:11:14: App "Web_1": spec.run.command: must not be empty",
        "apps/web.yaml:12:15: App "Web_1": spec.run.env.A: must be a string (numbers and booleans are taken as text)",
        "apps/web.yaml:13:3: App "Web_1": unknown field "spec.replica"; did you mean "replicas"?",
        "apps/web.yaml:14:9: App "Web_1": spec.port: must be at most 65535",
        "apps/web.yaml:15:3: App "Web_1": spec.readiness: needs exactly one of "http", "tcp", "exec"",
        "apps/web.yaml:16:20: App "Web_1": spec.readiness.periodSeconds: must be at least 1",
        "env.yaml:9:5: Environment "dev": spec.apps: "Web_1" is not a valid name: must be lowercase letters, digits and "-", starting and ending with a letter or digit",
      ]
    `);
  });

  test('exactly-one and required-field rules', async () => {
    const { messages } = await render({
      'a.yaml': y`
        apiVersion: keelson.dev/v1alpha1
        kind: App
        metadata: { name: a }
        spec:
          artifact:
            path: ../a
            url: https://example.com/a.tar.gz
          run: { command: [a] }
          liveness:
            initialDelaySeconds: 5
          readiness:
            http: { path: healthz }
            exec: { command: [true] }
        ---
        apiVersion: keelson.dev/v1alpha1
        kind: App
        metadata: { name: b }
        spec:
          version: "1"
          artifact: { url: "http://example.com/b.tar.gz" }
          run: { command: [b] }
      `,
      'e.yaml': y`
        apiVersion: keelson.dev/v1alpha1
        kind: Environment
        metadata: { name: e }
        spec:
          target: { local: {}, kubernetes: {} }
          apps: { a: { colour: blue } }
        ---
        apiVersion: keelson.dev/v1alpha1
        kind: Environment
        metadata: {}
        spec: {}
      `,
    });
    expect(messages).toMatchInlineSnapshot(`
      [
        "a.yaml:5:3: App "a": spec.artifact: needs exactly one of "path", "url", found "path" and "url"",
        "a.yaml:9:3: App "a": spec.liveness: needs exactly one of "http", "tcp", "exec"",
        "a.yaml:12:19: App "a": spec.readiness.http.path: must start with "/"",
        "a.yaml:13:23: App "a": spec.readiness.exec.command[0]: must be a string, not boolean true",
        "a.yaml:20:13: App "b": spec.artifact: a url artifact needs "sha256" (64 hex digits) to verify the download",
        "e.yaml:5:36: Environment "e": spec.target.kubernetes.namespace: is required",
        "e.yaml:6:16: Environment "e": unknown field "spec.apps.a.colour" (allowed: autoUpdate, version, replicas, env, port, hosts, tls, secrets, helm, syncOptions, ignoreDifferences, jsonnet, user, resources)",
        "e.yaml:10:11: Environment: metadata.name: is required",
      ]
    `);
  });

  test('unknown kind and apiVersion of keelson.dev are reported; YAML syntax errors at their position', async () => {
    const { messages } = await render({
      'a.yaml': 'apiVersion: keelson.dev/v1alpha1\nkind: Ap\nmetadata: { name: a }\n---\napiVersion: keelson.dev/v2\nkind: App\n',
      'b.yaml': 'apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata:\n  name: b\n   spec: 1\n',
    });
    expect(messages).toMatchInlineSnapshot(`
      [
        "a.yaml:2:7: unknown kind "Ap" for keelson.dev/v1alpha1; did you mean "App"? (kinds: App, Environment)",
        "a.yaml:5:13: unsupported apiVersion "keelson.dev/v2"; this Keelson reads keelson.dev/v1alpha1",
        "b.yaml:4:9: YAML syntax error: Nested mappings are not allowed in compact mappings",
        "b.yaml:4:9: YAML syntax error: Implicit keys need to be on a single line",
      ]
    `);
  });

  test('duplicate names are reported at every declaration', async () => {
    const { messages, desired } = await render({
      'apps/a.yaml': app('web'),
      'apps/b.yaml': app('web'),
      'envs.yaml': [env('dev', '    web:\n'), env('dev', '    web:\n')].join('---\n'),
    });
    expect(desired.environments).toHaveLength(1);
    expect(messages).toMatchInlineSnapshot(`
      [
        "apps/a.yaml:4:9: App "web" is declared more than once (also at apps/b.yaml:4:9); names must be unique, rename or remove one",
        "apps/b.yaml:4:9: App "web" is declared more than once (also at apps/a.yaml:4:9); names must be unique, rename or remove one",
        "envs.yaml:4:9: Environment "dev" is declared more than once (also at envs.yaml:14:9); names must be unique, rename or remove one",
        "envs.yaml:14:9: Environment "dev" is declared more than once (also at envs.yaml:4:9); names must be unique, rename or remove one",
      ]
    `);
  });

  test('an environment listing an unknown app', async () => {
    const { messages } = await render({
      'apps.yaml': [app('web'), app('worker')].join('---\n'),
      'prod.yaml': env('prod', '    web:\n    api:\n    wrker:\n'),
    });
    expect(messages).toMatchInlineSnapshot(`
      [
        "prod.yaml:10:5: environment "prod" lists app "api" but no App named "api" exists (declared apps: web, worker)",
        "prod.yaml:11:5: environment "prod" lists app "wrker" but no App named "wrker" exists; did you mean "worker"?",
      ]
    `);
  });

  test('references to an app that failed validation are not reported twice', async () => {
    const { messages } = await render({
      'apps.yaml': [app('web', '  replicas: -1\n'), app('api', '  dependsOn: [web]\n')].join('---\n'),
      'env.yaml': env('dev', '    web:\n    api:\n'),
    });
    expect(messages).toMatchInlineSnapshot(`
      [
        "apps.yaml:11:13: App "web": spec.replicas: must be at least 0",
      ]
    `);
  });

  test('dependsOn naming an unknown app or an app the environment does not list', async () => {
    const { messages } = await render({
      'apps.yaml': [app('web', '  dependsOn: [api, dbb]\n'), app('api'), app('db')].join('---\n'),
      'env.yaml': env('dev', '    web:\n'),
    });
    expect(messages).toMatchInlineSnapshot(`
      [
        "apps.yaml:11:20: app "web" depends on "dbb" but no App named "dbb" exists; did you mean "db"?",
        "env.yaml:9:5: environment "dev" lists app "web", which depends on "api", but does not list "api"; add "api" to spec.apps or remove it from dependsOn of App "web" (apps.yaml:11:15)",
      ]
    `);
  });

  test('dependency cycles, reported once per cycle', async () => {
    const { messages, desired } = await render({
      'apps.yaml': [
        app('a', '  dependsOn: [b]\n'),
        app('b', '  dependsOn: [c]\n'),
        app('c', '  dependsOn: [a]\n'),
        app('d', '  dependsOn: [d]\n'),
        app('e', '  dependsOn: [a]\n'),
      ].join('---\n'),
      'env.yaml': env('dev', ['a', 'b', 'c', 'd', 'e'].map((n) => `    ${n}:\n`).join('')),
    });
    expect(messages).toMatchInlineSnapshot(`
      [
        "apps.yaml:11:15: dependency cycle: a -> b -> c -> a; remove one of these dependsOn entries",
        "apps.yaml:47:15: app "d" depends on itself; remove "d" from its dependsOn",
      ]
    `);
    // Still a total order, so callers that show the desired state alongside issues see every app.
    expect(desired.environments[0].apps.map((a) => a.name).sort()).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  test('two local environments claiming one public port: reported at both places', async () => {
    const { messages } = await render({
      'apps.yaml': [app('web', '', 8080), app('api')].join('---\n'),
      'dev.yaml': env('dev', '    web:\n    api:\n      port: 9000\n'),
      'prod.yaml': env('prod', '    web:\n      replicas: 2\n    api:\n      port: 9000\n'),
      'stage.yaml': env('stage', '    web:\n      port: 8081\n'),
    });
    expect(messages).toMatchInlineSnapshot(`
      [
        "dev.yaml:9:5: port 8080 of app "web" in environment "dev" is also claimed by app "web" of environment "prod" (prod.yaml:9:5); local environments share this machine, give each a distinct port",
        "dev.yaml:11:13: port 9000 of app "api" in environment "dev" is also claimed by app "api" of environment "prod" (prod.yaml:12:13); local environments share this machine, give each a distinct port",
        "prod.yaml:9:5: port 8080 of app "web" in environment "prod" is also claimed by app "web" of environment "dev" (dev.yaml:9:5); local environments share this machine, give each a distinct port",
        "prod.yaml:12:13: port 9000 of app "api" in environment "prod" is also claimed by app "api" of environment "dev" (dev.yaml:11:13); local environments share this machine, give each a distinct port",
      ]
    `);
  });

  test('port conflicts consider every environment, even when rendering one', async () => {
    const files = {
      'apps.yaml': app('web', '', 8080),
      'envs.yaml': [env('dev', '    web:\n'), env('prod', '    web:\n')].join('---\n'),
      'k8s.yaml': y`
        apiVersion: keelson.dev/v1alpha1
        kind: Environment
        metadata: { name: cluster }
        spec:
          target: { kubernetes: { namespace: shop, context: prod } }
          apps: { web: }
      `,
    };
    const { messages, desired } = await render(files, { envs: ['dev'] });
    expect(desired.environments.map((e) => e.name)).toEqual(['dev']);
    expect(messages).toHaveLength(2);
    expect(messages[0]).toMatch(/^envs\.yaml:9:5: port 8080 of app "web" in environment "dev" is also claimed by app "web" of environment "prod" \(envs\.yaml:19:5\)/);
    expect(messages[1]).toMatch(/^envs\.yaml:19:5: port 8080 of app "web" in environment "prod"/);
    const cluster = await render(files, { envs: ['cluster'] });
    // No port conflict on Kubernetes; what it does need of the App is reported instead.
    expect(cluster.messages).toHaveLength(1);
    expect(cluster.messages[0]).toMatch(/^k8s\.yaml:6:\d+: environment "cluster" runs on Kubernetes, but App "web" \(apps\.yaml:\d+:\d+\) has neither "image" nor "manifests"/);
    expect(cluster.desired.environments[0].target).toEqual({ kubernetes: { namespace: 'shop', context: 'prod' } });
  });

  test('two apps of one environment with the same port', async () => {
    const { messages } = await render({
      'apps.yaml': [app('web', '', 8080), app('api')].join('---\n'),
      'dev.yaml': env('dev', '    web:\n    api: { port: 8080 }\n'),
    });
    expect(messages).toMatchInlineSnapshot(`
      [
        "dev.yaml:9:5: environment "dev": apps "web" and "api" both use port 8080; give each app its own port",
        "dev.yaml:10:18: environment "dev": apps "api" and "web" both use port 8080; give each app its own port",
      ]
    `);
  });

  test('an artifact path escaping the repository root', async () => {
    const { root, messages } = await render({
      'apps/web.yaml': app('web').replace('releases/web-{version}', '../../outside/web-{version}'),
      'apps/api.yaml': app('api').replace('releases/api-{version}', 'rel/{version}'),
      'env.yaml': env('dev', '    web:\n    api: { version: "../../../x" }\n'),
    });
    expect(messages.map((m) => m.replaceAll(root, '<root>').replace(/resolves to \S+,/, 'resolves to <abs>,'))).toMatchInlineSnapshot(`
      [
        "apps/api.yaml:8:11: App "api": artifact path "rel/{version}" with version "../../../x" of environment "dev" resolves to <abs>, outside the repository root <root>; keep artifacts inside the repository or use artifact.url",
        "apps/web.yaml:8:11: App "web": artifact path "../../outside/web-{version}" resolves to <abs>, outside the repository root <root>; keep artifacts inside the repository or use artifact.url",
      ]
    `);
  });

  test('a path outside the repository root', async () => {
    const { messages } = await render({ 'a.yaml': app('a') }, { path: '../elsewhere' });
    expect(messages[0]).toMatch(/^\.\.\/elsewhere:1:1: path "\.\.\/elsewhere" is outside the repository root/);
  });
});
