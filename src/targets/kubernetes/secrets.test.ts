import { describe, expect, it } from 'vitest';
import type { DesiredApp } from '../../core/model.js';
import { injectSecrets, redactChanges, secretsDigest, withoutData } from './secrets.js';
import type { KObject } from './objects.js';

const app = (digest = 'd1') =>
  ({
    name: 'web',
    env: 'prod',
    secrets: {
      env: { DB_PASSWORD: { file: 'secrets/db.enc.yaml', key: 'password', digest } },
      files: { 'config/tls.yaml': { file: 'secrets/tls.enc.yaml', digest: 'f1' } },
    },
  }) as unknown as DesiredApp;

const deployment = (): KObject => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'web' },
  spec: { template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'web', image: 'x', env: [{ name: 'DB_PASSWORD', value: 'plain' }] }] } } },
});

describe('secrets on Kubernetes', () => {
  it('wires env vars by secretKeyRef and files as a read-only volume, replacing a plain value of the same name', () => {
    const pod = (injectSecrets(deployment(), app()) as any).spec.template;
    expect(pod.metadata.annotations['keelson.dev/secrets']).toBe(secretsDigest(app()));
    expect(pod.spec.containers[0].env).toEqual([
      { name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: 'web-secrets', key: 'DB_PASSWORD' } } },
      { name: 'KEELSON_SECRETS_DIR', value: '/var/run/keelson/secrets' },
    ]);
    expect(pod.spec.volumes).toEqual([{ name: 'keelson-secrets', secret: { secretName: 'web-secrets', items: [{ key: 'config_tls.yaml', path: 'config/tls.yaml' }] } }]);
    expect(pod.spec.containers[0].volumeMounts).toEqual([{ name: 'keelson-secrets', mountPath: '/var/run/keelson/secrets', readOnly: true }]);
  });

  it('leaves objects alone when the app has no secrets, and non-workloads always', () => {
    const d = deployment();
    expect(injectSecrets(d, { name: 'web' } as DesiredApp)).toBe(d);
    const cm: KObject = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' } };
    expect(injectSecrets(cm, app())).toBe(cm);
  });

  it('changes the pod template digest when a value (its keyed digest) changes', () => {
    expect(secretsDigest(app('d1'))).not.toBe(secretsDigest(app('d2')));
  });

  it('keeps no values for the store and redacts them in changes', () => {
    const s: KObject = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, data: { A: 'c2VjcmV0' }, stringData: { B: 'secret' } };
    expect(withoutData(s)).toEqual({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' } });
    expect(redactChanges(s, [{ field: 'data.A', old: 'x', new: 'y' }, { field: 'metadata.labels.a', old: 'x', new: 'y' }])).toEqual([
      { field: 'data.A', old: '(redacted)', new: '(redacted)' },
      { field: 'metadata.labels.a', old: 'x', new: 'y' },
    ]);
    expect(redactChanges(s, [{ path: 'data', live: { A: 'x' }, desired: { A: 'y' } }])).toEqual([{ path: 'data', live: '(redacted)', desired: '(redacted)' }]);
    const cm: KObject = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' } };
    expect(redactChanges(cm, [{ field: 'data.A', old: 'x', new: 'y' }])).toEqual([{ field: 'data.A', old: 'x', new: 'y' }]);
  });
});
