import { afterAll, describe, expect, it } from 'vitest';
import { tempDir, writeTree } from '../../test/helpers.js';
import { formatIssue } from '../core/types.js';
import { renderRepository } from './index.js';

const app = (hooks = '') => `apiVersion: keelson.dev/v1alpha1
kind: App
metadata:
  name: web
spec:
  version: "1.0.0"
  artifact:
    path: ../releases/web
  run:
    command: ["node", "server.js"]
${hooks}`;

describe('render: hooks, sync windows and notifications', () => {
  const tmp = tempDir('keelson-render-delivery-');
  afterAll(() => tmp.cleanup());

  const render = async (name: string, files: Record<string, string>) => {
    const root = `${tmp.dir}/${name}`;
    writeTree(root, { 'releases/web/server.js': '', ...files });
    return renderRepository({ root });
  };

  it('merges environment hooks before the app ones and resolves windows and notifications', async () => {
    const { desired, issues } = await render('ok', {
      'apps/web.yaml': app(`  hooks:
    preSync:
      - exec: { command: ["node", "migrate.js"] }
    postSync:
      - http: { url: "http://127.0.0.1:{port}/", expectStatus: [200, 204] }
        retries: 2
`),
      'environments/prod.yaml': `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata:
  name: prod
spec:
  apps:
    web: {}
  hooks:
    preSync:
      - name: backup
        backup: { postgres: { env: DATABASE_URL } }
  syncWindows:
    - kind: deny
      schedule: "0 0 * * 6,0"
      duration: 48h
  notifications:
    - name: chat
      type: slack
      urlEnv: SLACK_URL
  protected: true
`,
    });
    expect(issues).toEqual([]);
    const env = desired.environments[0];
    expect(env.hooks?.web?.preSync?.map((s) => s.name ?? Object.keys(s).find((k) => ['exec', 'http', 'backup'].includes(k)))).toEqual(['backup', 'exec']);
    expect(env.hooks?.web?.preSync?.[0]).toEqual({ name: 'backup', timeoutSeconds: 60, retries: 0, retryDelaySeconds: 1, backup: { postgres: { env: 'DATABASE_URL' }, retain: 5 } });
    expect(env.hooks?.web?.postSync?.[0]).toMatchObject({ retries: 2, http: { url: 'http://127.0.0.1:{port}/', method: 'GET', expectStatus: [200, 204], headers: {} } });
    expect(env.syncWindows).toEqual([{ kind: 'deny', schedule: '0 0 * * 6,0', durationSeconds: 172_800, timeZone: 'UTC', manualSync: false }]);
    expect(env.notifications).toEqual([
      { name: 'chat', type: 'slack', urlEnv: 'SLACK_URL', headers: {}, triggers: ['syncSucceeded', 'syncFailed', 'healthDegraded', 'rolledBack'], suppressRepeatsSeconds: 600, apps: [] },
    ]);
    expect(env.protected).toBe(true);
    // Hooks are not part of the app spec: changing them never restarts a process.
    expect('hooks' in env.apps[0]).toBe(false);
  });

  it('leaves environments without these fields exactly as before', async () => {
    const { desired } = await render('plain', {
      'apps/web.yaml': app(),
      'environments/dev.yaml': 'apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: dev\nspec:\n  apps:\n    web: {}\n',
    });
    expect(Object.keys(desired.environments[0]).sort()).toEqual(['apps', 'name', 'source', 'target']);
  });

  it('reports bad steps, cron expressions and durations at file:line:col', async () => {
    const { issues } = await render('bad', {
      'apps/web.yaml': app(`  hooks:
    preSync:
      - exec: { command: ["x"] }
        http: { url: "http://x/" }
`),
      'environments/dev.yaml': `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata:
  name: dev
spec:
  apps:
    web: {}
  syncWindows:
    - kind: deny
      schedule: "0 25 * * *"
      duration: soon
  notifications:
    - name: n
`,
    });
    const text = issues.map(formatIssue).join('\n');
    expect(text).toMatch(/apps\/web\.yaml:13:\d+: .*needs exactly one of "exec", "http", "backup", found "exec" and "http"/);
    expect(text).toMatch(/environments\/dev\.yaml:10:\d+: .*"0 25 \* \* \*": invalid hour "25"/);
    expect(text).toMatch(/environments\/dev\.yaml:11:\d+: .*must be a duration such as 30m, 48h/);
    expect(text).toMatch(/environments\/dev\.yaml:13:\d+: .*needs exactly one of "url", "urlEnv"/);
  });
});
