import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir, writeTree } from '../../../test/helpers.js';
import { TransientError } from '../../core/errors.js';
import { Credentials, loadConnection } from './kubeconfig.js';

const tmp = tempDir('keelson-kubeconfig-');
afterAll(() => tmp.cleanup());

const config = (o: { current?: string; clusters?: unknown[]; users?: unknown[]; contexts?: unknown[] }) =>
  JSON.stringify({ apiVersion: 'v1', kind: 'Config', 'current-context': o.current, clusters: o.clusters ?? [], users: o.users ?? [], contexts: o.contexts ?? [] });

describe('kubeconfig', () => {
  it('merges a KUBECONFIG list the way kubectl does: the first file naming an entry wins; paths are relative to their file', () => {
    const dir = join(tmp.dir, 'merge');
    writeTree(dir, {
      'a/config': config({
        current: 'dev',
        clusters: [{ name: 'c1', cluster: { server: 'https://one.example:6443/', 'certificate-authority': 'ca.pem' } }],
        contexts: [{ name: 'dev', context: { cluster: 'c1', user: 'u1', namespace: 'team' } }],
      }),
      'a/ca.pem': 'CA-ONE',
      'b/config': config({
        current: 'other',
        clusters: [{ name: 'c1', cluster: { server: 'https://ignored.example' } }],
        users: [{ name: 'u1', user: { 'client-certificate': 'crt.pem', 'client-key': 'key.pem' } }],
      }),
      'b/crt.pem': 'CERT',
      'b/key.pem': 'KEY',
    });
    const c = loadConnection({}, { KUBECONFIG: [join(dir, 'a/config'), join(dir, 'missing'), join(dir, 'b/config')].join(':') });
    expect(c).toMatchObject({ server: 'https://one.example:6443', namespace: 'team', insecure: false });
    expect(c.origin).toBe(`context "dev" in ${join(dir, 'a/config')}`);
    expect(c.ca?.toString()).toBe('CA-ONE');
    expect([c.cert?.toString(), c.key?.toString()]).toEqual(['CERT', 'KEY']);
  });

  it('says which context, cluster or user is missing, and refuses what it cannot do', () => {
    const file = join(tmp.dir, 'bad.yaml');
    writeFileSync(
      file,
      config({
        current: 'a',
        clusters: [{ name: 'c', cluster: { server: 'https://x' } }, { name: 'p', cluster: { server: 'https://x', 'proxy-url': 'http://proxy' } }],
        users: [{ name: 'old', user: { 'auth-provider': { name: 'gcp' } } }],
        contexts: [
          { name: 'a', context: { cluster: 'c', user: 'nobody' } },
          { name: 'b', context: { cluster: 'nope' } },
          { name: 'gcp', context: { cluster: 'c', user: 'old' } },
          { name: 'proxied', context: { cluster: 'p' } },
        ],
      }),
    );
    expect(() => loadConnection({ kubeconfig: file })).toThrow(`context "a" in ${file} names user "nobody", which is not in ${file}`);
    expect(() => loadConnection({ kubeconfig: file, context: 'b' })).toThrow('names cluster "nope", which has no server');
    expect(() => loadConnection({ kubeconfig: file, context: 'zzz' })).toThrow('kubeconfig has no context "zzz" (contexts: a, b, gcp, proxied)');
    expect(() => loadConnection({ kubeconfig: file, context: 'gcp' })).toThrow('uses the auth-provider "gcp"; Keelson supports exec credential plugins instead (kubelogin for OIDC and AKS, gke-gcloud-auth-plugin for GKE');
    expect(() => loadConnection({ kubeconfig: file, context: 'proxied' })).toThrow('sets proxy-url');
    expect(() => loadConnection({ kubeconfig: join(tmp.dir, 'nope.yaml') })).toThrow(`cannot read kubeconfig ${join(tmp.dir, 'nope.yaml')}`);
    expect(() => loadConnection({}, { HOME: join(tmp.dir, 'nohome') }, join(tmp.dir, 'no-sa'))).toThrow('no Kubernetes cluster configured: set spec.target.kubernetes.kubeconfig or KUBECONFIG');
  });

  it('inside a pod: the service account, whose rotated token is read again', async () => {
    const sa = join(tmp.dir, 'sa');
    writeTree(sa, { token: 'first', 'ca.crt': 'CLUSTER-CA', namespace: 'keelson-system' });
    const c = loadConnection({}, { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443', HOME: join(tmp.dir, 'nohome') }, sa);
    expect(c).toMatchObject({ server: 'https://10.0.0.1:443', namespace: 'keelson-system', origin: 'the in-cluster service account' });
    const creds = new Credentials(c);
    expect((await creds.get()).authorization).toBe('Bearer first');
    writeFileSync(join(sa, 'token'), 'second');
    creds.invalidate(); // what a 401 does
    expect((await creds.get()).authorization).toBe('Bearer second');
  });

  it('runs an exec credential plugin (argv, its env, KUBERNETES_EXEC_INFO) and runs it again when the credential expired', async () => {
    const dir = join(tmp.dir, 'exec');
    const count = join(dir, 'count');
    writeTree(dir, {
      'plugin.mjs': `import { appendFileSync, readFileSync } from 'node:fs';
appendFileSync(${JSON.stringify(count)}, 'x');
const n = readFileSync(${JSON.stringify(count)}, 'utf8').length;
const info = JSON.parse(process.env.KUBERNETES_EXEC_INFO);
console.log(JSON.stringify({ apiVersion: info.apiVersion, kind: 'ExecCredential', status: { token: process.argv[2] + '-' + process.env.TEAM + '-' + n + '-' + info.spec.cluster.server, expirationTimestamp: new Date(Date.now() + 1000).toISOString() } }));`,
    });
    const file = join(dir, 'config');
    writeFileSync(
      file,
      config({
        current: 'x',
        clusters: [{ name: 'c', cluster: { server: 'https://api.example' } }],
        users: [{ name: 'u', user: { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: process.execPath, args: [join(dir, 'plugin.mjs'), 'tok'], env: [{ name: 'TEAM', value: 'ops' }], provideClusterInfo: true } } }],
        contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
      }),
    );
    const creds = new Credentials(loadConnection({ kubeconfig: file }));
    const [a, b] = await Promise.all([creds.get(), creds.get()]); // one run for both
    expect(a.authorization).toBe('Bearer tok-ops-1-https://api.example');
    expect(b).toBe(a);
    // It expires 1 s after it was issued, minus a 10 s margin: already stale, so the next request runs the plugin again.
    expect((await creds.get()).authorization).toBe('Bearer tok-ops-2-https://api.example');
  });

  it('names the plugin and its install hint when it cannot run', async () => {
    const file = join(tmp.dir, 'exec-missing.yaml');
    writeFileSync(
      file,
      config({
        current: 'x',
        clusters: [{ name: 'c', cluster: { server: 'https://api.example' } }],
        users: [{ name: 'u', user: { exec: { command: join(tmp.dir, 'no-such-plugin'), installHint: 'install it with: apt-get install the-plugin' } } }],
        contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
      }),
    );
    await expect(new Credentials(loadConnection({ kubeconfig: file })).get()).rejects.toThrow(/credential plugin .*no-such-plugin failed: .*install it with: apt-get install the-plugin/);
    const bad = join(tmp.dir, 'bad-plugin.sh');
    writeFileSync(bad, '#!/bin/sh\necho not json\n');
    chmodSync(bad, 0o755);
    writeFileSync(file, config({ current: 'x', clusters: [{ name: 'c', cluster: { server: 'https://api.example' } }], users: [{ name: 'u', user: { exec: { command: bad } } }], contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }] }));
    await expect(new Credentials(loadConnection({ kubeconfig: file })).get()).rejects.toThrow('printed no usable ExecCredential');
  });

  it("runs a plugin given by a relative path from the kubeconfig's directory, without Keelson's secrets; a failing run is transient", async () => {
    const dir = join(tmp.dir, 'relative');
    writeTree(dir, {
      'bin/plugin.sh': `#!/bin/sh
[ -n "$FAIL" ] && { echo "token service unavailable" >&2; exit 1; }
echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"age-key-'"\${KEELSON_AGE_KEY:-absent}"'-'"\${SOPS_AGE_KEY:-absent}"'"}}'
`,
    });
    chmodSync(join(dir, 'bin/plugin.sh'), 0o755);
    const file = join(dir, 'config');
    const write = (env: { name: string; value: string }[]) =>
      writeFileSync(file, config({ current: 'x', clusters: [{ name: 'c', cluster: { server: 'https://api.example' } }], users: [{ name: 'u', user: { exec: { command: './bin/plugin.sh', env } } }], contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }] }));
    write([]);
    process.env.KEELSON_AGE_KEY = 'AGE-SECRET-KEY-1TEST';
    process.env.SOPS_AGE_KEY = 'AGE-SECRET-KEY-1TEST';
    try {
      expect((await new Credentials(loadConnection({ kubeconfig: file })).get()).authorization).toBe('Bearer age-key-absent-absent');
    } finally {
      delete process.env.KEELSON_AGE_KEY;
      delete process.env.SOPS_AGE_KEY;
    }
    write([{ name: 'FAIL', value: '1' }]);
    const err = await new Credentials(loadConnection({ kubeconfig: file })).get().catch((e) => e);
    expect(err).toBeInstanceOf(TransientError);
    expect(err.message).toMatch(/plugin\.sh failed: token service unavailable$/);
  });
});
