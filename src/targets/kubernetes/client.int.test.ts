import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { parse } from 'yaml';
import { tempDir } from '../../../test/helpers.js';
import { kubectl, kubernetesSuite, uniqueNamespace } from '../../../test/k8s.js';
import { apiMessage, connect, isNotFound, statusCode } from './client.js';

/** Keelson's REST client against the real test control plane. */
kubernetesSuite('kubernetes client', () => {
  const tmp = tempDir('keelson-k8s-client-');
  const namespace = uniqueNamespace('client');
  afterAll(() => {
    kubectl('delete', 'namespace', namespace, '--wait=false', '--ignore-not-found');
    tmp.cleanup();
  });

  it('authenticates with an exec credential plugin that hands out a client certificate', async () => {
    // The plugin prints the test kubeconfig's own client certificate, as cloud plugins print theirs.
    const kc = parse(readFileSync(process.env.KUBECONFIG!, 'utf8'));
    const user = kc.users[0].user;
    const plugin = join(tmp.dir, 'plugin.mjs');
    writeFileSync(
      plugin,
      `console.log(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { clientCertificateData: ${JSON.stringify(Buffer.from(user['client-certificate-data'], 'base64').toString())}, clientKeyData: ${JSON.stringify(Buffer.from(user['client-key-data'], 'base64').toString())} } }));`,
    );
    kc.users = [{ name: 'exec', user: { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: process.execPath, args: [plugin] } } }];
    kc.contexts = [{ name: 'exec', context: { cluster: kc.clusters[0].name, user: 'exec' } }];
    const file = join(tmp.dir, 'kubeconfig');
    writeFileSync(file, JSON.stringify(kc));
    const { api } = connect({ kubeconfig: file, context: 'exec' });
    try {
      await api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } }, 'keelson');
      const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'one', namespace }, data: { a: '1' } };
      const applied = await api.apply(cm, { fieldManager: 'keelson' });
      expect((applied.metadata.managedFields as unknown[])[0]).toMatchObject({ manager: 'keelson', operation: 'Apply' });
      expect((await api.read(cm)).data).toEqual({ a: '1' });
      const listed = await api.list('v1', 'ConfigMap', { namespace, labelSelector: 'nope=1' });
      expect(listed).toEqual([]);
      // Errors carry the server's status code and message.
      const conflict = await api.create(cm, 'keelson').catch((e) => e);
      expect(statusCode(conflict)).toBe(409);
      expect(apiMessage(conflict)).toBe('(AlreadyExists) configmaps "one" already exists');
      await api.delete(cm);
      const gone = await api.read(cm).catch((e) => e);
      expect(isNotFound(gone)).toBe(true);
      expect(await api.resourceOf('example.com/v1', 'Widget')).toBeUndefined();
    } finally {
      api.close();
    }
  });

  it('names the server and the context when the API server cannot be reached', async () => {
    const kc = parse(readFileSync(process.env.KUBECONFIG!, 'utf8'));
    kc.clusters[0].cluster.server = 'https://127.0.0.1:1';
    const file = join(tmp.dir, 'unreachable');
    writeFileSync(file, JSON.stringify(kc));
    const { api } = connect({ kubeconfig: file });
    await expect(api.resourceOf('v1', 'ConfigMap')).rejects.toThrow(`cannot reach the Kubernetes API server https://127.0.0.1:1 (context "${kc['current-context']}" in ${file})`);
    api.close();
  });
});
