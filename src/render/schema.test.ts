import { readFile } from 'node:fs/promises';
import { describe, expect, test } from 'vitest';
import { AppDocumentSchema, EnvironmentDocumentSchema, keelsonJsonSchema, keelsonJsonSchemaText } from './schema.js';

const schemaFile = new URL('../../schema/keelson.schema.json', import.meta.url);

describe('JSON Schema', () => {
  test('the committed schema/keelson.schema.json equals a fresh generation', async () => {
    // If this fails: npm run build && node scripts/gen-schema.mjs
    expect(await readFile(schemaFile, 'utf8')).toBe(keelsonJsonSchemaText());
  });

  test('is oneOf on kind, strict, with the exactly-one rules editors can check', () => {
    const s = keelsonJsonSchema() as { oneOf: { properties: Record<string, any>; additionalProperties: boolean }[] };
    expect(s.oneOf.map((o) => o.properties.kind.const)).toEqual(['App', 'Environment']);
    const spec = s.oneOf[0].properties.spec;
    expect(spec.additionalProperties).toBe(false);
    // artifact and run.command are local-target needs, image/manifests Kubernetes ones, and version is needed only
    // where something uses it: all checked per environment's target.
    expect(spec.required).toBeUndefined();
    expect(spec.properties.artifact.oneOf).toEqual([{ required: ['path'] }, { required: ['url', 'sha256'] }]);
    expect(spec.properties.readiness.oneOf).toHaveLength(3);
    // Input side: defaulted fields are optional and show their default.
    expect(spec.properties.replicas.default).toBe(1);
  });
});

describe('schemas', () => {
  const app = {
    apiVersion: 'keelson.dev/v1alpha1',
    kind: 'App',
    metadata: { name: 'web' },
    spec: { version: '1', artifact: { path: 'r' }, run: { command: ['x'] }, readiness: { exec: { command: ['true'] } } },
  };

  test('fill in Kubernetes defaults', () => {
    const out = AppDocumentSchema.parse(app);
    expect(out.spec).toMatchObject({
      replicas: 1,
      dependsOn: [],
      rollout: { progressDeadlineSeconds: 60 },
      terminationGracePeriodSeconds: 30,
      run: { env: {} },
      readiness: { initialDelaySeconds: 0, periodSeconds: 10, timeoutSeconds: 1, failureThreshold: 3, successThreshold: 1 },
    });
  });

  test('an environment defaults to the local target and no apps', () => {
    const out = EnvironmentDocumentSchema.parse({ apiVersion: 'keelson.dev/v1alpha1', kind: 'Environment', metadata: { name: 'dev' }, spec: {} });
    expect(out.spec).toEqual({ target: { local: {} }, apps: {} });
  });

  test('reject names that are not DNS labels', () => {
    for (const name of ['Web', 'web_1', '-web', 'web-', '', 'a'.repeat(64)]) {
      expect(AppDocumentSchema.safeParse({ ...app, metadata: { name } }).success, name).toBe(false);
    }
    expect(AppDocumentSchema.safeParse({ ...app, metadata: { name: 'a-1' } }).success).toBe(true);
  });
});
