import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { root } from '../../../test/helpers.js';
import { kubectl, kubernetesSuite } from '../../../test/k8s.js';

/** deploy/kubernetes/: Keelson's own manifests apply cleanly and grant what the target needs, no more. */
kubernetesSuite('deploy/kubernetes manifests', () => {
  const file = join(root, 'deploy', 'kubernetes', 'keelson.yaml');
  afterAll(() => {
    kubectl('delete', '-f', file, '--wait=false', '--ignore-not-found');
  });

  it('apply cleanly with server-side apply, twice', () => {
    expect(kubectl('apply', '--server-side', '-f', file)).toMatch(/deployment.apps\/keelson serverside-applied/);
    expect(kubectl('apply', '--server-side', '-f', file)).toMatch(/deployment.apps\/keelson serverside-applied/);
  });

  it('grant least privilege to the service account', () => {
    const can = (...args: string[]) => {
      try {
        return kubectl('auth', 'can-i', '--as=system:serviceaccount:keelson-system:keelson', ...args);
      } catch (err) {
        return String((err as { stdout?: string }).stdout ?? '').trim();
      }
    };
    expect(can('patch', 'deployments', '-n', 'shop')).toBe('yes');
    expect(can('watch', 'services', '--all-namespaces')).toBe('yes');
    expect(can('create', 'namespaces')).toBe('yes');
    expect(can('delete', 'namespaces')).toBe('no');
    expect(can('create', 'clusterroles')).toBe('no');
    expect(can('impersonate', 'users')).toBe('no');
  });
});
