import { describe, expect, it } from 'vitest';
import { hookIdentity, hookRunSelector, isGeneratedHook, splitHooks } from './hooks.js';
import { formatKey, withOwnership, type KObject } from './objects.js';

const job = (meta: Record<string, unknown>, hook: string): KObject =>
  withOwnership({ apiVersion: 'batch/v1', kind: 'Job', metadata: { namespace: 'shop', ...meta, annotations: { 'argocd.argoproj.io/hook': hook } } as unknown as KObject['metadata'] }, 'prod', 'web');

describe('hooks written with generateName', () => {
  it('are split by phase and sorted with named ones; their key stands for every run', () => {
    const { resources, hooks } = splitHooks([job({ generateName: 'zz-' }, 'PreSync'), job({ name: 'aa' }, 'PreSync'), job({ generateName: 'mm-' }, 'PreSync,PostSync')]);
    expect(resources).toEqual([]);
    expect(hooks.PreSync.map((h) => formatKey(h))).toEqual(['Job/shop/aa', 'Job/shop/mm-*', 'Job/shop/zz-*']);
    expect(hooks.PostSync.map((h) => formatKey(h))).toEqual(['Job/shop/mm-*']);
    expect(hooks.PreSync.map(isGeneratedHook)).toEqual([false, true, true]);
  });

  it('are one hook per phase, generateName and kind: that is what finds their earlier runs', () => {
    const h = job({ generateName: 'migrate-' }, 'PreSync,PostSync');
    expect(hookIdentity(h, 'PreSync')).not.toBe(hookIdentity(h, 'PostSync'));
    expect(hookIdentity(h, 'PreSync')).not.toBe(hookIdentity(job({ generateName: 'seed-' }, 'PreSync'), 'PreSync'));
    expect(hookIdentity(h, 'PreSync')).toBe(hookIdentity(job({ generateName: 'migrate-' }, 'PreSync'), 'PreSync'));
    const labelled = { ...h, metadata: { ...h.metadata, labels: { ...h.metadata.labels, 'keelson.dev/hook': hookIdentity(h, 'PreSync') } } };
    expect(hookRunSelector(labelled)).toBe(`keelson.dev/env=prod,keelson.dev/app=web,keelson.dev/hook=${hookIdentity(h, 'PreSync')}`);
  });
});
