/**
 * Property-based fuzzing of the ops repository: whatever YAML is committed, render answers with issues at
 * `file:line:col`, never with an exception. Runs are bounded and seeded (fast-check prints the seed and the
 * shrunk counterexample on failure); every counterexample found is kept below as a plain regression test.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { Issue } from '../core/types.js';
import { fuzzParams } from '../../test/fuzz.js';
import { renderRepository, type RenderResult } from './render.js';


let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'keelson-render-fuzz-'));
});
afterAll(() => rm(scratch, { recursive: true, force: true }));

let seq = 0;
async function writeRepo(files: Record<string, string | Uint8Array>, withReleases = false): Promise<string> {
  const root = join(scratch, `r${seq++}`);
  // the releases of examples/ (what the base repository's artifact paths name), without copying files
  if (withReleases) for (const v of ['1.0.0', '1.1.0']) await mkdir(join(root, 'releases', `hello-${v}`), { recursive: true });
  for (const [file, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, file)), { recursive: true });
    await writeFile(join(root, file), content);
  }
  await mkdir(root, { recursive: true });
  return root;
}

/** Every issue names its file and a 1-based position (inside the file, when it is one we wrote) and says something. */
function expectWellFormed(res: RenderResult, files: Record<string, string | Uint8Array> = {}): void {
  for (const i of res.issues as Issue[]) {
    const content = files[i.file];
    if (content !== undefined) {
      const lines = Buffer.from(content).toString('utf8').split(/\r\n|\r|\n/).length;
      expect(i.line, `line of ${JSON.stringify(i)} in a file of ${lines} lines`).toBeLessThanOrEqual(lines);
    }
    expect(typeof i.file).toBe('string');
    expect(i.file.length).toBeGreaterThan(0);
    expect(Number.isInteger(i.line) && i.line >= 1, `line of ${JSON.stringify(i)}`).toBe(true);
    expect(Number.isInteger(i.col) && i.col >= 1, `col of ${JSON.stringify(i)}`).toBe(true);
    expect(typeof i.message).toBe('string');
    expect(i.message.trim().length).toBeGreaterThan(0);
  }
}

/** A render without issues must give a desired state the engine can use. */
function expectUsable(res: RenderResult): void {
  if (res.issues.length > 0) return;
  const names = res.desired.environments.map((e) => e.name);
  expect(new Set(names).size).toBe(names.length);
  for (const env of res.desired.environments) {
    expect(env.name).toMatch(/\S/);
    for (const app of env.apps) {
      expect(app.name).toMatch(/\S/);
      expect(typeof app.version).toBe('string');
      expect(Number.isInteger(app.replicas) && app.replicas >= 0).toBe(true);
      if (app.port !== undefined) expect(Number.isInteger(app.port) && app.port >= 1 && app.port <= 65535).toBe(true);
      expect(Array.isArray(app.command)).toBe(true);
      for (const v of Object.values(app.vars)) expect(typeof v).toBe('string');
    }
  }
}

// ---- vocabulary ------------------------------------------------------------------------------------------------

const FIELDS = [
  'apiVersion', 'kind', 'metadata', 'name', 'spec', 'version', 'artifact', 'path', 'url', 'run', 'command', 'env',
  'replicas', 'port', 'readiness', 'liveness', 'http', 'tcp', 'exec', 'periodSeconds', 'initialDelaySeconds',
  'timeoutSeconds', 'failureThreshold', 'successThreshold', 'terminationGracePeriodSeconds', 'target', 'local',
  'kubernetes', 'kubeconfig', 'context', 'namespace', 'apps', 'dependsOn', 'hooks', 'preSync', 'postSync',
  'preDelete', 'rollout', 'type', 'routing', 'secrets', 'source', 'manifests', 'helm', 'jsonnet', 'image',
  'autoUpdate', 'semver', 'gitTags', 'updatePolicy', 'syncWindows', 'schedule', 'duration', 'timeZone',
  'manualSync', 'notifications', 'protected', 'backup', 'postgres', 'databaseUrl', 'urlEnv', 'retain', 'retries',
  'retryDelaySeconds', 'progressDeadlineSeconds', 'syncOptions', 'ignoreDifferences', 'annotations', 'headers',
  'method', 'body', 'expectStatus', 'tlas', 'extVars', 'libs', 'directory', 'triggers', 'title',
  'suppressRepeatsSeconds', 'syncFailed', 'expiresAt', 'error', '__proto__', 'constructor', 'toString', '<<',
];
const KIND_VALUES = ['App', 'Environment', 'app', 'Enviroment', 'Secret', '', 'App ', 'Rollout'];
const API_VERSIONS = ['keelson.dev/v1alpha1', 'keelson.dev/v1', 'keelson.dev/', 'keelson.dev/v1alpha1 ', 'v1'];

const weirdString = fc.oneof(
  fc.constantFrom('', ' ', '{version}', '../../../etc', '/etc/passwd', '..', '-1', 'null', '~', '1e999', '0x1F',
    'on', 'NO', '.inf', '.nan', '$(rm -rf /)', '\u0000', '\u202e', '😀', 'a'.repeat(300), 'hello', 'dev', 'prod', 'web'),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 12 }),
);
const weirdNumber = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(0, -1, 1, 65535, 65536, 8080, Number.MAX_SAFE_INTEGER, 2 ** 53 + 1, 1e308, -0, 0.5),
  fc.bigInt().map((b) => b * 10n ** 30n),
);
const scalar = fc.oneof(weirdString, weirdNumber, fc.boolean(), fc.constant(null));
const key = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...FIELDS) }, { weight: 1, arbitrary: weirdString });

const { value: anyValue } = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalar,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(key, tie('value'), { maxKeys: 5 }),
  ),
}));

/** A document that claims to be Keelson's: apiVersion and kind from the vocabulary, the rest random. */
const keelsonDoc = fc
  .record({
    apiVersion: fc.constantFrom(...API_VERSIONS),
    kind: fc.oneof(fc.constantFrom(...KIND_VALUES), scalar),
    metadata: fc.oneof(fc.record({ name: fc.oneof(weirdString, scalar) }), anyValue),
    spec: anyValue,
  }, { requiredKeys: ['apiVersion'] })
  .chain((base) => fc.dictionary(key, anyValue, { maxKeys: 2 }).map((extra) => ({ ...extra, ...base })));

function toYaml(v: unknown): string {
  try {
    return stringify(v, { aliasDuplicateObjects: false });
  } catch {
    return String(v);
  }
}

/** Text-level damage that a serializer never produces: broken indentation, duplicate keys, aliases, junk. */
const damage = fc.oneof(
  fc.constant((t: string) => t),
  fc.nat().map((n) => (t: string) => {
    const lines = t.split('\n');
    const i = n % Math.max(lines.length, 1);
    lines[i] = ` ${lines[i] ?? ''}`; // one line indented by one space
    return lines.join('\n');
  }),
  fc.nat().map((n) => (t: string) => {
    const lines = t.split('\n');
    const i = n % Math.max(lines.length, 1);
    lines.splice(i, 0, lines[i] ?? ''); // a duplicated line, often a duplicate key
    return lines.join('\n');
  }),
  fc.nat().map((n) => (t: string) => {
    const lines = t.split('\n');
    const i = n % Math.max(lines.length, 1);
    lines.splice(i, 1);
    return lines.join('\n');
  }),
  fc.tuple(fc.nat(), fc.string({ unit: 'binary', maxLength: 8 })).map(([n, s]) => (t: string) => {
    const i = n % (t.length + 1);
    return t.slice(0, i) + s + t.slice(i);
  }),
  fc.constantFrom(
    (t: string) => `${t}\nanchored: &a { x: 1 }\nalias: *a\nmerged: { <<: *a }\n`,
    (t: string) => `${t}\nbad: *missing\n`,
    (t: string) => `${t}\nself: &s [*s]\n`,
    (t: string) => `%YAML 1.1\n---\n${t}`,
    (t: string) => `${t}\n---\n${t}`,
    (t: string) => t.replaceAll('  ', '\t'),
    (t: string) => `\ufeff${t}`,
    (t: string) => t.replaceAll('\n', '\r\n'),
    (t: string) => `${t}\n? [complex, key]\n: v\n`,
    (t: string) => `${t}\n!!binary x: !!int y\n`,
    (t: string) => `${t}\ntag: !custom { a: 1 }\n`,
    (t: string) => `${t}\nnum: 123456789012345678901234567890123456789\n`,
    (t: string) => {
      // a "billion laughs": 9 levels of 9 aliases
      const lines = ['l0: &l0 [lol]'];
      for (let i = 1; i <= 9; i++) lines.push(`l${i}: &l${i} [${Array(9).fill(`*l${i - 1}`).join(', ')}]`);
      return `${t}\n${lines.join('\n')}\n`;
    },
  ),
);

const keelsonFile = fc
  .tuple(fc.array(keelsonDoc, { minLength: 1, maxLength: 3 }), damage)
  .map(([docs, dmg]) => dmg(docs.map(toYaml).join('---\n')));

/** Any content of one file: from a damaged Keelson document to binary junk that happens to mention the group. */
const fileContent = fc.oneof(
  { weight: 6, arbitrary: keelsonFile },
  { weight: 1, arbitrary: fc.constant('') },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }).map((s) => `keelson.dev/\n${s}`) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.concat([Buffer.from('apiVersion: keelson.dev/v1alpha1\n'), b])) },
  { weight: 1, arbitrary: anyValue.map((v) => `apiVersion: keelson.dev/v1alpha1\n${toYaml(v)}`) },
);

const repository = fc.dictionary(
  fc.constantFrom('apps/a.yaml', 'apps/b.yml', 'environments/dev.yaml', 'environments/prod.YAML', 'x/y/z.yaml', 'root.yaml'),
  fileContent,
  { minKeys: 1, maxKeys: 4 },
);

describe('renderRepository fuzz', () => {
  it('never throws on arbitrary repositories, and every issue has file, line >= 1, col >= 1 and a message', async () => {
    await fc.assert(
      fc.asyncProperty(repository, fc.boolean(), async (files, withReleases) => {
        const root = await writeRepo(files, withReleases);
        const res = await renderRepository({ root });
        expectWellFormed(res, files);
        expectUsable(res);
      }),
      fuzzParams(),
    );
  });

  // ---- one mutation of a valid repository ----------------------------------------------------------------------

  const BASE: Record<string, string> = {
    'apps/hello.yaml': [
      'apiVersion: keelson.dev/v1alpha1',
      'kind: App',
      'metadata:',
      '  name: hello',
      'spec:',
      '  version: "1.0.0"',
      '  artifact:',
      '    path: ../releases/hello-{version}',
      '  run:',
      '    command: ["node", "server.js"]',
      '    env:',
      '      GREETING: hello',
      '  replicas: 2',
      '  port: 8080',
      '  readiness:',
      '    http: { path: /healthz }',
      '    periodSeconds: 2',
      '',
    ].join('\n'),
    'environments/dev.yaml': [
      'apiVersion: keelson.dev/v1alpha1',
      'kind: Environment',
      'metadata:',
      '  name: dev',
      'spec:',
      '  target:',
      '    local: {}',
      '  apps:',
      '    hello:',
      '',
    ].join('\n'),
    'environments/prod.yaml': [
      'apiVersion: keelson.dev/v1alpha1',
      'kind: Environment',
      'metadata:',
      '  name: prod',
      'spec:',
      '  target:',
      '    local: {}',
      '  apps:',
      '    hello:',
      '      version: "1.1.0"',
      '      port: 8081',
      '      replicas: 3',
      '',
    ].join('\n'),
  };

  it('the base repository of the mutation property is valid', async () => {
    const res = await renderRepository({ root: await writeRepo(BASE, true) });
    expect(res.issues).toEqual([]);
    expect(res.desired.environments.map((e) => e.name)).toEqual(['dev', 'prod']);
  });

  /** A line-level mutation: the scalar after `key:` replaced, a line removed, re-indented, duplicated or inserted. */
  const lineMutation = fc.tuple(
    fc.constantFrom(...Object.keys(BASE)),
    fc.nat(),
    fc.oneof(
      scalar.map((v) => ({ op: 'value' as const, v })),
      fc.constant({ op: 'delete' as const }),
      fc.constant({ op: 'duplicate' as const }),
      fc.integer({ min: -2, max: 3 }).map((d) => ({ op: 'indent' as const, d })),
      fc.tuple(key, scalar).map(([k, v]) => ({ op: 'insert' as const, k, v })),
    ),
  );

  function mutate(text: string, n: number, m: { op: string; v?: unknown; d?: number; k?: string }): string {
    const lines = text.split('\n');
    const i = n % (lines.length - 1); // never the empty last line
    const line = lines[i];
    const indent = line.match(/^ */)![0];
    switch (m.op) {
      case 'value': {
        const at = line.indexOf(':');
        const v = toYaml(m.v).trimEnd().split('\n').join(' ');
        lines[i] = at < 0 ? `${indent}- ${v}` : `${line.slice(0, at + 1)} ${v}`;
        break;
      }
      case 'delete':
        lines.splice(i, 1);
        break;
      case 'duplicate':
        lines.splice(i, 0, line);
        break;
      case 'indent':
        lines[i] = m.d! < 0 ? line.slice(Math.min(-m.d!, indent.length)) : ' '.repeat(m.d!) + line;
        break;
      case 'insert':
        lines.splice(i, 0, `${indent}${JSON.stringify(m.k)}: ${toYaml(m.v).trimEnd().split('\n').join(' ')}`);
        break;
    }
    return lines.join('\n');
  }

  it('a valid repository with one random mutation is still usable or reports at least one issue', async () => {
    await fc.assert(
      fc.asyncProperty(lineMutation, async ([file, n, m]) => {
        const files = { ...BASE, [file]: mutate(BASE[file], n, m) };
        const res = await renderRepository({ root: await writeRepo(files, true) });
        expectWellFormed(res, files);
        expectUsable(res);
      }),
      fuzzParams(),
    );
  });

  /** Rich documents (every form the schema knows); the tree mutation below starts from one of them. */
  const RICH: Record<string, unknown>[] = [
    {
      apiVersion: 'keelson.dev/v1alpha1', kind: 'App', metadata: { name: 'web' },
      spec: {
        version: '1.0.0', artifact: { path: '../releases/hello-{version}' }, run: { command: ['node', 'server.js'], env: { A: 1 } },
        replicas: 2, port: 9000, readiness: { tcp: {} }, liveness: { exec: { command: ['true'] } }, dependsOn: ['hello'],
        rollout: { strategy: 'canary', canary: { steps: [{ setWeight: 20 }, { pause: { duration: '10s' } }] }, progressDeadlineSeconds: 60 },
        hooks: { preSync: [{ exec: { command: ['echo', 'x'] } }], postSync: [{ http: { url: 'http://127.0.0.1/x', method: 'POST', expectStatus: 200 } }] },
        secrets: { env: [{ name: 'TOKEN', file: 'secrets/s.yaml', key: 'token' }], files: [{ file: 'secrets/s.yaml', path: 'cfg.yaml' }] },
        updatePolicy: { semver: '^1.0.0', source: { gitTags: {} } },
      },
    },
    {
      apiVersion: 'keelson.dev/v1alpha1', kind: 'App', metadata: { name: 'kube' },
      spec: {
        version: '2.0.0', manifests: './m', image: 'registry.example/kube',
        helm: { releaseName: 'r', values: { a: { b: 1 } }, valuesFiles: ['values.yaml'], tests: 'afterSync', chart: { repo: 'oci://x/y', version: '1.0.0' } },
        jsonnet: { tlas: { a: 'x', b: { code: '1+1' } }, extVars: { c: 'y' }, libs: ['lib'] },
        syncOptions: ['ServerSideApply=true', 'Prune=confirm'], ignoreDifferences: [{ kind: 'Deployment', jsonPointers: ['/spec/replicas'] }],
      },
    },
    {
      apiVersion: 'keelson.dev/v1alpha1', kind: 'Environment', metadata: { name: 'k8s', annotations: { a: 'b' } },
      spec: {
        target: { kubernetes: { namespace: 'ns', kubeconfig: '/etc/kube', context: 'c' } },
        apps: { kube: { version: '2.0.1', replicas: 3, helm: { values: { a: 2 } }, syncOptions: ['Replace=true'] }, web: {} },
        syncWindows: [{ schedule: '0 22 * * *', duration: '1h', timeZone: 'Europe/Berlin' }],
        notifications: [{ url: 'http://127.0.0.1/hook', triggers: ['syncFailed'] }], protected: true,
        expiresAt: '2030-01-01T00:00:00Z', routing: 'host',
        hooks: { syncFailed: [{ exec: { command: ['echo'] } }], preDelete: [{ backup: { postgres: { urlEnv: 'DB' } } }] },
      },
    },
  ];

  type Path = (string | number)[];
  function paths(v: unknown, at: Path = []): Path[] {
    const out: Path[] = [at];
    if (Array.isArray(v)) v.forEach((x, i) => out.push(...paths(x, [...at, i])));
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) out.push(...paths(x, [...at, k]));
    return out;
  }
  function edit(doc: unknown, path: Path, op: 'delete' | 'replace' | 'add' | 'wrap', k: string, v: unknown): unknown {
    const copy = structuredClone(doc);
    if (path.length === 0) return op === 'replace' ? v : copy;
    const parent = path.slice(0, -1).reduce<any>((o, s) => o[s], copy);
    const last = path[path.length - 1];
    if (op === 'delete') {
      if (Array.isArray(parent)) parent.splice(last as number, 1);
      else delete parent[last];
    } else if (op === 'replace') parent[last] = v;
    else if (op === 'wrap') parent[last] = [parent[last]];
    else if (parent[last] && typeof parent[last] === 'object' && !Array.isArray(parent[last])) parent[last][k] = v;
    else parent[last] = { [k]: v };
    return copy;
  }

  it('a rich document with one random tree mutation renders to issues or a usable state, never an exception', async () => {
    const mutation = fc
      .tuple(fc.nat(RICH.length - 1), fc.nat(), fc.constantFrom('delete', 'replace', 'add', 'wrap' as const), key, anyValue)
      .map(([d, n, op, k, v]) => {
        const all = paths(RICH[d]);
        return { d, doc: edit(RICH[d], all[n % all.length], op as 'delete', k, v) };
      });
    await fc.assert(
      fc.asyncProperty(mutation, async ({ d, doc }) => {
        const others = RICH.filter((_, i) => i !== d);
        const files = {
          'apps/rich.yaml': [...others, doc].map(toYaml).join('---\n'),
          'secrets/s.yaml': 'token: x\n',
        };
        const res = await renderRepository({ root: await writeRepo({ ...BASE, ...files }, true) });
        expectWellFormed(res);
        expectUsable(res);
      }),
      fuzzParams(),
    );
  });

  /** Mutations that must be refused: a field of the base set to a value of the wrong type or out of range. */
  const breaking = fc.constantFrom(
    ['apps/hello.yaml', '  port: 8080', '  port: 70000'],
    ['apps/hello.yaml', '  port: 8080', '  port: "8080x"'],
    ['apps/hello.yaml', '  replicas: 2', '  replicas: -1'],
    ['apps/hello.yaml', '  replicas: 2', '  replicas: 1e400'],
    ['apps/hello.yaml', '  version: "1.0.0"', '  version: [1]'],
    ['apps/hello.yaml', '    command: ["node", "server.js"]', '    command: node'],
    ['apps/hello.yaml', '    path: ../releases/hello-{version}', '    path: ../../../../etc'],
    ['apps/hello.yaml', 'kind: App', 'kind: Ap'],
    ['apps/hello.yaml', '  name: hello', '  name: ""'],
    ['environments/dev.yaml', '    local: {}', '    local: 1'],
    ['environments/dev.yaml', '    hello:', '    nope:'],
    ['environments/prod.yaml', '  name: prod', '  name: dev'],
    ['environments/prod.yaml', '      port: 8081', '      port: 8080'],
    ['environments/prod.yaml', '      replicas: 3', '      replicas: three'],
  );

  it('a breaking mutation of a valid repository always reports an issue', async () => {
    await fc.assert(
      fc.asyncProperty(breaking, async ([file, from, to]) => {
        expect(BASE[file]).toContain(from);
        const root = await writeRepo({ ...BASE, [file]: BASE[file].replace(from, to) }, true);
        const res = await renderRepository({ root });
        expectWellFormed(res);
        expect(res.issues.length, `${file}: ${to}`).toBeGreaterThan(0);
      }),
      fuzzParams(50),
    );
  });
});
