import { describe, expect, it } from 'vitest';
import { sortForApply, wavesOf } from './order.js';
import type { KObject } from './objects.js';

const obj = (kind: string, name: string, wave?: number): KObject => ({
  apiVersion: 'v1',
  kind,
  metadata: { name, ...(wave === undefined ? {} : { annotations: { 'argocd.argoproj.io/sync-wave': String(wave) } }) },
});

describe('apply order', () => {
  it('puts Namespaces and CRDs first, config before workloads, custom resources last', () => {
    const sorted = sortForApply([obj('Widget', 'w'), obj('Deployment', 'd'), obj('ConfigMap', 'c'), obj('CustomResourceDefinition', 'crd'), obj('Namespace', 'n'), obj('Service', 's')]);
    expect(sorted.map((o) => o.kind)).toEqual(['Namespace', 'CustomResourceDefinition', 'ConfigMap', 'Service', 'Deployment', 'Widget']);
  });

  it('honours Argo CD sync waves before kinds', () => {
    const waves = wavesOf([obj('Deployment', 'late', 1), obj('ConfigMap', 'c'), obj('Job', 'migrate', -1)]);
    expect(waves.map((w) => [w.wave, w.objects.map((o) => o.metadata.name)])).toEqual([
      [-1, ['migrate']],
      [0, ['c']],
      [1, ['late']],
    ]);
  });
});
