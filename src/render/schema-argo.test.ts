import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { formatIssue } from '../core/types.js';
import { tempDir, writeTree } from '../../test/helpers.js';
import { renderRepository } from './render.js';

const tmp = tempDir('keelson-schema-argo-');
afterAll(() => tmp.cleanup());

const app = (extra: string) =>
  `apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata: { name: web }\nspec:\n  version: "1.0"\n  image: ghcr.io/acme/web\n${extra}`;
const env = (name: string, entry: string) =>
  `apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: ${name} }\nspec:\n  target: { kubernetes: { namespace: ${name} } }\n  apps:\n    web: ${entry}\n`;

describe('syncOptions and ignoreDifferences (Argo CD compatibility)', () => {
  it('are read from the App and replaced by an environment entry', async () => {
    const root = join(tmp.dir, 'ok');
    writeTree(root, {
      'web.yaml': app(
        '  syncOptions: [CreateNamespace=true, Prune=confirm]\n  ignoreDifferences:\n    - { group: apps, kind: Deployment, jsonPointers: [/spec/replicas] }\n',
      ),
      'staging.yaml': env('staging', '{}'),
      'prod.yaml': env('prod', '{ syncOptions: [Replace=true], ignoreDifferences: [{ kind: Deployment, group: apps, managedFieldsManagers: [hpa] }] }'),
    });
    const { desired, issues } = await renderRepository({ root });
    expect(issues).toEqual([]);
    const web = (e: string) => desired.environments.find((x) => x.name === e)!.apps[0];
    expect(web('staging')).toMatchObject({ syncOptions: ['CreateNamespace=true', 'Prune=confirm'], ignoreDifferences: [{ group: 'apps', kind: 'Deployment', jsonPointers: ['/spec/replicas'] }] });
    expect(web('prod')).toMatchObject({ syncOptions: ['Replace=true'], ignoreDifferences: [{ kind: 'Deployment', managedFieldsManagers: ['hpa'] }] });
  });

  it('reject a malformed JSON pointer, an unknown sync option and a rule without fields, at file:line:col', async () => {
    const root = join(tmp.dir, 'bad');
    writeTree(root, {
      'web.yaml': app('  syncOptions: [Replace=yes]\n  ignoreDifferences:\n    - kind: Deployment\n      jsonPointers: [spec/replicas, /a~2b]\n    - kind: Service\n'),
      'prod.yaml': env('prod', '{}'),
    });
    const { issues } = await renderRepository({ root });
    const messages = issues.map(formatIssue).join('\n');
    expect(messages).toMatch(/web\.yaml:7:\d+: .*must be one of ServerSideApply=true, Replace=true/);
    expect(messages).toMatch(/web\.yaml:10:\d+: .*must be a JSON pointer such as \/spec\/replicas/);
    expect(messages.match(/must be a JSON pointer/g)).toHaveLength(2);
    expect(messages).toMatch(/web\.yaml:11:\d+: .*needs "jsonPointers" or "managedFieldsManagers"/);
  });
});
