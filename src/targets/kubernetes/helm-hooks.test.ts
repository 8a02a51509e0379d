import { describe, expect, it } from 'vitest';
import { translateHelmHooks } from './helm-hooks.js';
import { splitHooks } from './hooks.js';
import type { KObject } from './objects.js';

const obj = (name: string, annotations?: Record<string, string>, kind = 'Job'): KObject => ({
  apiVersion: kind === 'Job' ? 'batch/v1' : 'v1',
  kind,
  metadata: { name, ...(annotations ? { annotations } : {}) },
});

describe('translateHelmHooks', () => {
  const rendered = [
    obj('app', undefined, 'ConfigMap'),
    obj('pre-i', { 'helm.sh/hook': 'pre-install', 'helm.sh/hook-weight': '-5' }),
    obj('pre-u', { 'helm.sh/hook': 'pre-upgrade', 'helm.sh/hook-delete-policy': 'hook-succeeded,hook-failed' }),
    obj('post-iu', { 'helm.sh/hook': 'post-install,post-upgrade', 'helm.sh/hook-weight': '3' }),
    obj('both-pre', { 'helm.sh/hook': 'pre-install,pre-upgrade' }),
    obj('smoke', { 'helm.sh/hook': 'test' }),
    obj('legacy-test', { 'helm.sh/hook': 'test-success' }),
    obj('cleanup', { 'helm.sh/hook': 'pre-delete', 'helm.sh/hook-delete-policy': 'before-hook-creation' }),
    obj('rollback', { 'helm.sh/hook': 'pre-rollback' }),
    obj('argo-wins', { 'helm.sh/hook': 'pre-install', 'argocd.argoproj.io/hook': 'Sync' }),
    obj('crd', { 'helm.sh/hook': 'crd-install' }, 'ConfigMap'),
  ];

  it('on install: pre-install → PreSync, post-install → PostSync, weights as waves, delete policies as Argo CD', () => {
    const r = translateHelmHooks(rendered, { install: true });
    const annotated = (name: string) => r.objects.find((o) => o.metadata.name === name)?.metadata.annotations;
    expect(r.objects.map((o) => o.metadata.name)).toEqual(['app', 'pre-i', 'post-iu', 'both-pre', 'argo-wins', 'crd']);
    expect(annotated('pre-i')).toMatchObject({ 'argocd.argoproj.io/hook': 'PreSync', 'argocd.argoproj.io/sync-wave': '-5', 'argocd.argoproj.io/hook-delete-policy': 'BeforeHookCreation' });
    expect(annotated('post-iu')).toMatchObject({ 'argocd.argoproj.io/hook': 'PostSync', 'argocd.argoproj.io/sync-wave': '3' });
    expect(annotated('argo-wins')?.['argocd.argoproj.io/hook']).toBe('Sync');
    expect(annotated('app')).toBeUndefined();
    expect(r.tests.map((o) => o.metadata.name)).toEqual(['smoke', 'legacy-test']);
    expect(r.preDelete.map((o) => o.metadata.name)).toEqual(['cleanup']);
    // The hooks target's phases see them in weight order.
    const { hooks, resources } = splitHooks(r.objects);
    expect(hooks.PreSync.map((o) => o.metadata.name)).toEqual(['pre-i', 'crd', 'both-pre']);
    expect(hooks.PostSync.map((o) => o.metadata.name)).toEqual(['post-iu']);
    expect(resources.map((o) => o.metadata.name)).toEqual(['app']);
  });

  it('on upgrade: pre-upgrade and post-upgrade only', () => {
    const r = translateHelmHooks(rendered, { install: false });
    expect(r.objects.map((o) => o.metadata.name)).toEqual(['app', 'pre-u', 'post-iu', 'both-pre', 'argo-wins', 'crd']);
    expect(r.objects[1].metadata.annotations).toMatchObject({ 'argocd.argoproj.io/hook': 'PreSync', 'argocd.argoproj.io/hook-delete-policy': 'HookSucceeded,HookFailed' });
    expect(r.objects[1].metadata.annotations?.['argocd.argoproj.io/sync-wave']).toBeUndefined();
  });

  it('leaves its input alone', () => {
    const before = structuredClone(rendered);
    translateHelmHooks(rendered, { install: true });
    expect(rendered).toEqual(before);
  });
});
