import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bin, freePort, getJson, startKeelson, stopProcess, tempDir, waitFor } from '../../test/helpers.js';

/** What `keelson up` says about the policy at start-up (the built CLI: `npm run build` first). */
describe('keelson up and the policy', () => {
  const tmp = tempDir('keelson-up-policy-');
  afterAll(() => tmp.cleanup());

  const run = async (name: string, config?: string): Promise<string> => {
    const state = join(tmp.dir, name);
    mkdirSync(state, { recursive: true });
    if (config !== undefined) writeFileSync(join(state, 'keelson.yaml'), config);
    const port = await freePort();
    const dead = await freePort();
    const logFile = join(tmp.dir, `${name}.log`);
    const keelson = startKeelson(['--repo', `http://127.0.0.1:${dead}/ops.git`, '--state-dir', state, '--listen', `127.0.0.1:${port}`, '--poll', '1h'], logFile);
    try {
      await waitFor('the API', () => getJson(`http://127.0.0.1:${port}/api/v1/status`).catch(() => undefined));
    } finally {
      await stopProcess(keelson);
    }
    return readFileSync(logFile, 'utf8');
  };

  it('says when no policy is configured', async () => {
    const log = await run('none');
    expect(log).toContain('no policy configured: every environment may use every target, any kubeconfig path on this host, any namespace and any kind (cluster-scoped too) the engine\'s credentials allow; see docs/security.md');
  });

  it('prints one line per rule of keelson.yaml', async () => {
    const log = await run(
      'tenants',
      [
        'clusters:',
        '  prod: { kubeconfig: /etc/keelson/prod.kubeconfig }',
        'policy:',
        '  rules:',
        '    - environments: ["team-a-*"]',
        '      targets: [kubernetes]',
        '      clusters: [prod]',
        '      namespaces: ["team-a-*"]',
        '      serviceAccount: { name: deployer, namespace: team-a }',
        '  default:',
        '    targets: []',
        '',
      ].join('\n'),
    );
    expect(log).toContain(
      'policy rule #1 (environments: team-a-*): targets kubernetes; clusters prod; no kubeconfig paths; namespaces team-a-*; cluster-scoped kinds only as allowed; as service account team-a/deployer',
    );
    expect(log).toContain('the default policy rule: refused (no target allowed)');
    expect(log).not.toContain('no policy configured');
  });

  it('refuses to start with a policy it cannot read, naming the key', () => {
    const state = join(tmp.dir, 'bad');
    mkdirSync(state, { recursive: true });
    writeFileSync(join(state, 'keelson.yaml'), 'policy:\n  rules:\n    - environments: [dev]\n      targets: [ssh]\n');
    const r = spawnSync(process.execPath, [bin, 'up', '--repo', tmp.dir, '--state-dir', state], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`${join(state, 'keelson.yaml')}: policy.rules.0.targets.0: `);
  });

  it('keelson validate --config checks a working tree against the policy', () => {
    const repo = join(tmp.dir, 'ops');
    mkdirSync(join(repo, 'envs'), { recursive: true });
    writeFileSync(join(repo, 'app.yaml'), 'apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata: { name: web }\nspec:\n  version: "1"\n  image: ghcr.io/acme/web\n');
    writeFileSync(join(repo, 'envs/prod.yaml'), 'apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: prod }\nspec:\n  target:\n    kubernetes: { namespace: kube-system, cluster: prod }\n  apps: { web: }\n');
    const config = join(tmp.dir, 'validate.yaml');
    writeFileSync(config, 'clusters:\n  prod: { kubeconfig: /etc/keelson/prod.kubeconfig }\npolicy:\n  default:\n    targets: [kubernetes]\n    namespaces: ["shop-*"]\n');
    const plain = spawnSync(process.execPath, [bin, 'validate', '--repo', repo], { encoding: 'utf8' });
    expect(plain.stdout).toContain('ok: 1 environment(s)');
    const r = spawnSync(process.execPath, [bin, 'validate', '--repo', repo, '--config', config], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stdout.trim().split('\n')).toEqual(['envs/prod.yaml:6:30: refused by the default policy rule: environment "prod" may not use namespace "kube-system" (allowed: shop-*)']);
  });
});
