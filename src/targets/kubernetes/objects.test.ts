import { describe, expect, it } from 'vitest';
import { formatKey, ignoresExtraneous, isKept, matchesDesired, needsPruneConfirmation, subsetDiffs, syncOption, withOwnership, type KObject } from './objects.js';

const deployment = (replicas: number): KObject => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'web', namespace: 'shop' },
  spec: { replicas, template: { spec: { containers: [{ name: 'web', image: 'web:1' }] } } },
});

describe('objects', () => {
  it('formats the canonical key', () => {
    expect(formatKey(deployment(1))).toBe('Deployment/shop/web');
    expect(formatKey({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } })).toBe('Namespace/shop');
  });

  it('adds ownership labels and a hash that changes with the object', () => {
    const a = withOwnership(deployment(1), 'prod', 'web');
    expect(a.metadata.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'keelson', 'keelson.dev/env': 'prod', 'keelson.dev/app': 'web' });
    expect(a.metadata.annotations!['keelson.dev/applied']).toMatch(/^[0-9a-f]{16}$/);
    expect(withOwnership(deployment(1), 'prod', 'web').metadata.annotations).toEqual(a.metadata.annotations);
    expect(withOwnership(deployment(2), 'prod', 'web').metadata.annotations).not.toEqual(a.metadata.annotations);
  });

  it('treats server defaults as equal and a scaled Deployment as drift', () => {
    const desired = withOwnership(deployment(1), 'prod', 'web');
    const live = structuredClone(desired) as any;
    live.spec.template.spec.containers[0].imagePullPolicy = 'IfNotPresent';
    live.spec.strategy = { type: 'RollingUpdate' };
    live.status = { replicas: 1 };
    expect(matchesDesired(desired, live)).toBe(true);
    live.spec.replicas = 3;
    expect(matchesDesired(desired, live)).toBe(false);
    expect(subsetDiffs(desired, live)).toEqual([{ path: 'spec.replicas', desired: 1, live: 3 }]);
  });

  it('compares int-or-string values by text', () => {
    expect(subsetDiffs({ port: 8080 }, { port: '8080' })).toEqual([]);
  });

  it('knows the keep annotations of Keelson, Argo CD and Flux', () => {
    const annotated = (annotations: Record<string, string>): KObject => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', annotations } });
    expect(isKept(annotated({ 'keelson.dev/prune': 'disabled' }))).toBe(true);
    expect(isKept(annotated({ 'argocd.argoproj.io/sync-options': 'ServerSideApply=true,Prune=false' }))).toBe(true);
    expect(isKept(annotated({ 'kustomize.toolkit.fluxcd.io/prune': 'disabled' }))).toBe(true);
    expect(isKept(annotated({}))).toBe(false);
  });

  it("reads Argo CD sync options: the object's annotation wins over the App's syncOptions", () => {
    const annotated = (annotations: Record<string, string>): KObject => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', annotations } });
    expect(syncOption(annotated({ 'argocd.argoproj.io/sync-options': ' Replace=true , Prune=confirm' }), 'Prune')).toBe('confirm');
    expect(syncOption(annotated({}), 'Prune', ['Prune=false'])).toBe('false');
    expect(syncOption(annotated({ 'argocd.argoproj.io/sync-options': 'Prune=true' }), 'Prune', ['Prune=false'])).toBe('true');
    expect(isKept(annotated({}), ['Prune=false'])).toBe(true);
    expect(needsPruneConfirmation(annotated({}), ['Prune=confirm'])).toBe(true);
    expect(needsPruneConfirmation(annotated({ 'argocd.argoproj.io/sync-options': 'Prune=false' }), ['Prune=confirm'])).toBe(false);
    expect(ignoresExtraneous(annotated({ 'argocd.argoproj.io/compare-options': 'IgnoreExtraneous' }))).toBe(true);
    expect(formatKey({ apiVersion: 'batch/v1', kind: 'Job', metadata: { generateName: 'migrate-', namespace: 'shop' } } as unknown as KObject)).toBe('Job/shop/migrate-*');
  });
});
