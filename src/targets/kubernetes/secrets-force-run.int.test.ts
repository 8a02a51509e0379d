import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import type { DesiredApp } from '../../core/model.js';
import { EventBus, type Stamped } from '../../core/events.js';
import { silentLogger } from '../../log.js';
import { generateKey } from '../../secrets/age-keys.js';
import { encryptSops, parsePlain } from '../../secrets/sops.js';
import { Store } from '../../store/store.js';
import { tempDir, waitFor, writeTree } from '../../../test/helpers.js';
import { kubectl, kubectlWithInput, kubernetesSuite, uniqueNamespace } from '../../../test/k8s.js';
import { KubernetesTarget } from './kubernetes-target.js';

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

/** SOPS secrets as a Secret (never stored, logged or diffed in plaintext), `--force` taking over conflicts, `keelson run` as a Job. */
kubernetesSuite('kubernetes target: secrets, --force, one-off runs', () => {
  const tmp = tempDir('keelson-k8s-secrets-');
  const events: Stamped[] = [];
  const bus = new EventBus();
  bus.subscribe((e) => events.push(e));
  let store: Store;
  const targets: KubernetesTarget[] = [];
  const namespaces = new Set<string>();
  const password = `pw-${randomBytes(8).toString('hex')}`;
  const cert = `cert-${randomBytes(8).toString('hex')}`;
  const savedKey = process.env.KEELSON_AGE_KEY;

  beforeAll(async () => {
    store = new Store(join(tmp.dir, 'state'));
    const key = await generateKey();
    process.env.KEELSON_AGE_KEY = key.identity;
    writeTree(tmp.dir, {
      'secrets/db.enc.yaml': await encryptSops(parsePlain(`user: app\npassword: ${password}\n`, 'yaml', 'db'), { format: 'yaml', recipients: [key.recipient] }),
      'secrets/tls.enc.yaml': await encryptSops(parsePlain(`cert: ${cert}\n`, 'yaml', 'tls'), { format: 'yaml', recipients: [key.recipient] }),
      'manifests/shop/config.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: shop-config }\ndata: { mode: keelson }\n',
    });
  });
  afterAll(async () => {
    if (savedKey === undefined) delete process.env.KEELSON_AGE_KEY;
    else process.env.KEELSON_AGE_KEY = savedKey;
    for (const t of targets) await t.close();
    for (const ns of namespaces) kubectl('delete', 'namespace', ns, '--wait=false', '--ignore-not-found');
    store.close();
    tmp.cleanup();
  });

  const newTarget = (namespace: string) => {
    namespaces.add(namespace);
    const t = new KubernetesTarget({ env: namespace, spec: { namespace }, store, bus, log: silentLogger(), requeue: () => undefined });
    targets.push(t);
    return t;
  };

  const app = (env: string, over: Partial<DesiredApp> = {}): DesiredApp => ({
    name: 'web',
    env,
    version: '1.0.0',
    artifact: {},
    command: [],
    vars: {},
    replicas: 1,
    dependsOn: [],
    progressDeadlineSeconds: 10,
    terminationGracePeriodSeconds: 5,
    source: { file: 'apps/web.yaml', line: 1, col: 1 },
    image: 'registry.example/web:1.0.0',
    ...over,
  });
  const ctx = { revision: 'a'.repeat(40), checkoutDir: '' };

  it('renders SOPS secrets into a Secret wired to the pods; plaintext is never stored, and drift on it is healed and redacted', async () => {
    const namespace = uniqueNamespace('k-secrets');
    const t = newTarget(namespace);
    const withSecrets = app(namespace, {
      secrets: {
        env: { DB_PASSWORD: { file: 'secrets/db.enc.yaml', key: 'password' } },
        files: { 'config/tls.yaml': { file: 'secrets/tls.enc.yaml', key: 'cert' } },
      },
    });
    const out = await t.apply(withSecrets, { ...ctx, checkoutDir: tmp.dir });
    expect(out).toMatchObject({ ok: true, action: 'created' });
    expect(out.objects?.map((o) => o.key)).toContain(`Secret/${namespace}/web-secrets`);

    const secret = JSON.parse(kubectl('-n', namespace, 'get', 'secret', 'web-secrets', '-o', 'json'));
    expect(secret.data).toEqual({ DB_PASSWORD: b64(password), 'config_tls.yaml': b64(cert) });
    const pod = JSON.parse(kubectl('-n', namespace, 'get', 'deployment', 'web', '-o', 'json')).spec.template.spec;
    expect(pod.containers[0].env).toEqual(
      expect.arrayContaining([
        { name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: 'web-secrets', key: 'DB_PASSWORD' } } },
        { name: 'KEELSON_SECRETS_DIR', value: '/var/run/keelson/secrets' },
      ]),
    );
    expect(pod.volumes[0]).toMatchObject({ name: 'keelson-secrets', secret: { secretName: 'web-secrets', items: [{ key: 'config_tls.yaml', path: 'config/tls.yaml' }] } });
    expect(pod.containers[0].volumeMounts[0]).toMatchObject({ mountPath: '/var/run/keelson/secrets', readOnly: true });

    // Re-apply writes nothing: the applied hash covers digests, not values, and the values still match.
    const again = await t.apply(withSecrets, { ...ctx, checkoutDir: tmp.dir });
    expect(again.objects?.every((o) => o.action === 'unchanged')).toBe(true);

    // Drift on the Secret's values is healed; the event shows neither the old nor the new value.
    const intruder = `intruder-${randomBytes(6).toString('hex')}`;
    kubectl('-n', namespace, 'patch', 'secret', 'web-secrets', '--type=merge', '-p', JSON.stringify({ data: { DB_PASSWORD: b64(intruder) } }));
    await waitFor('secret healed', () => JSON.parse(kubectl('-n', namespace, 'get', 'secret', 'web-secrets', '-o', 'json')).data.DB_PASSWORD === b64(password), 10_000);
    const drift = events.find((e) => e.type === 'drift.detected' && (e as { object?: string }).object === `Secret/${namespace}/web-secrets`);
    expect(drift).toBeDefined();
    expect(JSON.stringify(drift)).toContain('(redacted)');

    // A restarted target reads the inventory back without values: still intact, and nothing is re-written.
    const restarted = newTarget(namespace);
    await t.close();
    const [live] = await restarted.observe(namespace);
    expect(live).toMatchObject({ name: 'web', intact: true });
    const diff = await restarted.diff!(withSecrets, { ...ctx, checkoutDir: tmp.dir });
    expect(diff.every((d) => d.action === 'none')).toBe(true);

    // Nothing Keelson keeps or says holds the plaintext (or its base64).
    const stored = readFileSync(join(tmp.dir, 'state', 'keelson.db')).toString('latin1') + (store.getKv(`kubernetes.inventory/${namespace}/web`) ?? '');
    const said = JSON.stringify(events) + JSON.stringify(out) + JSON.stringify(diff);
    for (const plain of [password, cert, intruder]) {
      for (const form of [plain, b64(plain)]) {
        expect(stored).not.toContain(form);
        expect(said).not.toContain(form);
      }
    }
  });

  it('fails an apply that conflicts with another field manager, naming --force; force takes the fields over', async () => {
    const namespace = uniqueNamespace('k-force');
    const t = newTarget(namespace);
    kubectl('create', 'namespace', namespace);
    kubectlWithInput(
      `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: shop-config, namespace: ${namespace} }\ndata: { mode: other }\n`,
      'apply', '--server-side', '--field-manager=someone-else', '-f', '-',
    );
    const shop = app(namespace, { name: 'shop', image: undefined, manifests: { dir: 'manifests/shop', replicas: false }, artifact: { path: 'manifests/shop' } });
    const conflicted = await t.apply(shop, { ...ctx, checkoutDir: tmp.dir });
    expect(conflicted.ok).toBe(false);
    expect(conflicted.message).toMatch(/ConfigMap\/.*\/shop-config apply conflict: .*keelson sync --force/);
    expect(kubectl('-n', namespace, 'get', 'configmap', 'shop-config', '-o', 'jsonpath={.data.mode}')).toBe('other');

    const forced = await t.apply(shop, { ...ctx, checkoutDir: tmp.dir, force: true });
    expect(forced).toMatchObject({ ok: true });
    expect(kubectl('-n', namespace, 'get', 'configmap', 'shop-config', '-o', 'jsonpath={.data.mode}')).toBe('keelson');
    const managers = JSON.parse(kubectl('-n', namespace, 'get', 'configmap', 'shop-config', '-o', 'json', '--show-managed-fields')).metadata.managedFields;
    expect(managers.find((m: { manager: string }) => m.manager === 'keelson')?.fieldsV1?.['f:data']).toHaveProperty('f:mode');
  });

  it('runs a one-off command as a Job from the app pod template and deletes it afterwards', async () => {
    const namespace = uniqueNamespace('k-run');
    const t = newTarget(namespace);
    expect(await t.apply(app(namespace, { vars: { GREETING: 'hi' } }), { ...ctx, checkoutDir: tmp.dir })).toMatchObject({ ok: true });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const result = await t.runOnce!(namespace, 'web', ['sh', '-c', 'echo migrated'], { sink: { stdout: (b) => out.push(b), stderr: (b) => err.push(b) }, timeoutMs: 60_000 });
    // kwok completes a Job's pod with exit code 0 without running it (and has no log to show).
    expect(result).toMatchObject({ code: 0, signal: null });
    await waitFor('run Job deleted', () => kubectl('-n', namespace, 'get', 'jobs', '-o', 'name') === '', 30_000);
    await expect(t.runOnce!(namespace, 'nope', ['true'], { sink: { stdout: () => undefined, stderr: () => undefined } })).rejects.toThrow(/app "nope" is not deployed/);
  });
});
