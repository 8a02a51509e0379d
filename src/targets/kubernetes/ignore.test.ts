import { describe, expect, it } from 'vitest';
import { comparable, forApply, ignoredPaths, ownedLeaves, pointerTokens, rulesFor, underAny } from './ignore.js';
import type { KObject } from './objects.js';

const deployment = (replicas: number, managedFields?: unknown[]): KObject => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'web', namespace: 'shop', ...(managedFields ? { managedFields } : {}) },
  spec: { replicas, template: { spec: { containers: [{ name: 'web', image: 'web:1' }, { name: 'proxy', image: 'envoy:1' }] } } },
});

const keelsonOwns = { manager: 'keelson', operation: 'Apply', fieldsV1: { 'f:spec': { 'f:template': { 'f:spec': { 'f:containers': { 'k:{"name":"web"}': { '.': {}, 'f:name': {}, 'f:image': {} } } } } } } };
const hpaOwns = { manager: 'hpa-sim', operation: 'Update', subresource: 'scale', fieldsV1: { 'f:spec': { 'f:replicas': {} } } };

describe('ignoreDifferences', () => {
  it('matches rules by group and kind (no group: the core group), name and namespace', () => {
    const d = deployment(1);
    expect(rulesFor(d, [{ group: 'apps', kind: 'Deployment', jsonPointers: ['/spec/replicas'] }])).toHaveLength(1);
    expect(rulesFor(d, [{ kind: 'Deployment', jsonPointers: ['/spec/replicas'] }])).toHaveLength(0);
    expect(rulesFor(d, [{ group: '*', kind: '*', name: 'web', namespace: 'shop', jsonPointers: ['/x'] }])).toHaveLength(1);
    expect(rulesFor(d, [{ group: 'apps', kind: 'Deployment', name: 'api', jsonPointers: ['/x'] }])).toHaveLength(0);
    expect(pointerTokens('/metadata/annotations/a~1b~0c')).toEqual(['metadata', 'annotations', 'a/b~c']);
  });

  it('finds fields by pointer and by the live managedFields of a listed manager, keyed list elements included', () => {
    const live = deployment(5, [keelsonOwns, hpaOwns]);
    expect(ignoredPaths(deployment(1), live, [{ group: 'apps', kind: 'Deployment', managedFieldsManagers: ['hpa-sim'] }])).toEqual([['spec', 'replicas']]);
    expect(ownedLeaves(keelsonOwns.fieldsV1, deployment(1))).toEqual([
      ['spec', 'template', 'spec', 'containers', 0, 'name'],
      ['spec', 'template', 'spec', 'containers', 0, 'image'],
    ]);
    expect(ignoredPaths(deployment(1), live, [{ group: 'apps', kind: 'Deployment', jsonPointers: ['/spec/template/spec/containers/1/image', '/spec/nothing'] }])).toEqual([
      ['spec', 'template', 'spec', 'containers', 1, 'image'],
    ]);
  });

  it('leaves a field another manager took out of the apply, keeps the live value of one Keelson still owns, and compares neither', () => {
    const rules = [{ group: 'apps', kind: 'Deployment', jsonPointers: ['/spec/replicas'] }];
    const taken = deployment(5, [keelsonOwns, hpaOwns]);
    expect((forApply(deployment(1), taken, rules) as any).spec.replicas).toBeUndefined();
    const stillOurs = deployment(3, [{ ...keelsonOwns, fieldsV1: { 'f:spec': { 'f:replicas': {} } } }]);
    expect((forApply(deployment(1), stillOurs, rules) as any).spec.replicas).toBe(3);
    expect((forApply(deployment(1), taken, rules, 'replace') as any).spec.replicas).toBe(5);
    expect((forApply(deployment(1), undefined, rules) as any).spec.replicas).toBe(1); // created whole
    expect((comparable(deployment(1), taken, rules) as any).spec).not.toHaveProperty('replicas');
    // Owned by both (the other applied the same value): left out all the same, so the listed manager owns it alone.
    const shared = deployment(2, [{ ...keelsonOwns, fieldsV1: { 'f:spec': { 'f:replicas': {} } } }, { manager: 'hpa-sim', operation: 'Apply', fieldsV1: { 'f:spec': { 'f:replicas': {} } } }]);
    expect((forApply(deployment(2), shared, [{ group: 'apps', kind: 'Deployment', managedFieldsManagers: ['hpa-sim'] }]) as any).spec.replicas).toBeUndefined();
    expect(underAny('spec.replicas', [['spec', 'replicas']])).toBe(true);
    expect(underAny('spec.replicasX', [['spec', 'replicas']])).toBe(false);
  });
});
