import { describe, expect, it } from 'vitest';
import type { Plan } from '../plan/plan.js';
import { formatPreviewMarkdown, formatPreviewText, previewHasChanges, type PreviewLike } from './preview-format.js';

const plan = (env: string, steps: Plan['steps']): Plan => ({ env, revision: 'b'.repeat(40), steps });
const preview = (environments: Plan[], issues: string[] = []): PreviewLike => ({ revision: 'b'.repeat(40), commit: { message: 'scale web | add token' }, base: 'a'.repeat(40), issues, environments });

const k8s = plan('prod', [
  {
    app: 'web',
    action: 'update',
    from: 'aaaaaaa',
    to: 'bbbbbbb',
    reason: 'changed: artifact.digest',
    dependsOn: [],
    changes: [{ path: 'artifact.digest', live: 'tree:1', desired: 'tree:2' }],
    objects: [
      { key: 'Deployment/prod/web', action: 'update', changes: [{ path: 'spec.replicas', live: 2, desired: 3 }] },
      { key: 'Secret/prod/token', action: 'create', changes: [{ path: '', desired: { kind: 'Secret', metadata: { name: 'token' } } }] },
      { key: 'Secret/prod/db', action: 'update', changes: [{ path: 'data.password', live: 'b2xk', desired: 'bmV3' }] },
      { key: 'Service/prod/web', action: 'none', changes: [] },
    ],
  },
  { app: 'api', action: 'none', to: '1.0.0', reason: 'live equals desired', dependsOn: [], changes: [] },
]);
const local = plan('dev', [
  {
    app: 'hello',
    action: 'update',
    from: '1.0.0',
    to: '1.1.0',
    reason: 'changed: version',
    dependsOn: [],
    changes: [
      { path: 'version', live: '1.0.0', desired: '1.1.0' },
      { path: 'secrets.env.DB_PASSWORD.digest', live: 'hmac-1', desired: 'hmac-2' },
    ],
  },
]);

describe('preview output', () => {
  it("names a field the API server refused, on a new object and on a changed one (kubernetes/diff.ts's `(invalid)`)", () => {
    const refused = 'failed to create typed patch object (prod/web; apps/v1, Kind=Deployment): .spec.replica: field not declared in schema';
    const p = plan('prod', [
      {
        app: 'web',
        action: 'create',
        to: '1.0.0',
        reason: 'not running',
        dependsOn: [],
        changes: [],
        objects: [
          { key: 'Deployment/prod/web', action: 'create', changes: [{ path: '', desired: { kind: 'Deployment' } }, { path: '(invalid)', desired: refused }] },
          { key: 'Service/prod/web', action: 'update', changes: [{ path: '(invalid)', desired: '.spec.prots: field not declared in schema' }] },
        ],
      },
    ]);
    const text = formatPreviewText(preview([p]));
    expect(text).toContain(`      create Deployment/prod/web\n          invalid: ${refused}\n      update Service/prod/web\n          invalid: .spec.prots: field not declared in schema`);
  });

  it('text: changed environments and apps, object changes, a summary; secret values never shown', () => {
    const text = formatPreviewText(preview([k8s, local, plan('qa', [])]));
    expect(text).toBe(
      [
        `preview of bbbbbbb "scale web | add token" against live (running aaaaaaa)`,
        '',
        'environment prod',
        '  update  web aaaaaaa → bbbbbbb  (changed: artifact.digest)',
        '      update Deployment/prod/web',
        '          spec.replicas: 2 → 3',
        '      create Secret/prod/token',
        '      update Secret/prod/db',
        '          data.password: changed',
        '',
        'environment dev',
        '  update  hello 1.0.0 → 1.1.0  (changed: version)',
        '      version: "1.0.0" → "1.1.0"',
        '      secrets.env.DB_PASSWORD.digest: changed',
        '',
        '2 apps, 3 objects change in 2 environments (1 unchanged)',
      ].join('\n'),
    );
    expect(text).not.toMatch(/b2xk|bmV3|hmac-/);
  });

  it('markdown: a section per changed environment with a table and a diff block, escaped, long ones collapsed', () => {
    const md = formatPreviewMarkdown(preview([k8s, local]));
    expect(md).toContain('### Keelson preview of `bbbbbbb`');
    expect(md).toContain('scale web \\| add token — against live (running `aaaaaaa`)');
    expect(md).toContain('#### Environment `prod`');
    expect(md).toContain('| `web` | update | aaaaaaa → bbbbbbb | changed: artifact.digest |');
    expect(md).toContain('+   create Secret/prod/token');
    expect(md).toContain('        data.password: changed');
    expect(md).not.toContain('`api`');
    expect(md).not.toMatch(/b2xk|bmV3|hmac-/);
    expect(md).not.toContain('<details>');
    expect(md.trimEnd().split('\n').at(-1)).toBe('**Summary:** 2 apps, 3 objects change in 2 environments');

    const many = plan('big', [{ ...local.steps[0], changes: Array.from({ length: 20 }, (_, i) => ({ path: `vars.V${i}`, live: 'a', desired: 'b' })) }]);
    expect(formatPreviewMarkdown(preview([many]))).toContain('<details><summary>21 lines of changes</summary>');
  });

  it('no changes, and problems of the revision', () => {
    expect(previewHasChanges(preview([plan('prod', [k8s.steps[1]])]))).toBe(false);
    expect(formatPreviewText(preview([plan('prod', [k8s.steps[1]])]))).toContain('no changes: live already equals bbbbbbb in 1 environment');
    const broken = preview([], ['apps/web.yaml:3:1: App "web": spec.colour: unknown field']);
    expect(previewHasChanges(broken)).toBe(true);
    expect(formatPreviewMarkdown(broken)).toContain(':x: **The revision does not render**');
    expect(formatPreviewText(broken)).toContain('  apps/web.yaml:3:1: App "web": spec.colour: unknown field');
  });
});
