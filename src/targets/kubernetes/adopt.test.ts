import { describe, expect, it } from 'vitest';
import type { AppInventory } from './inventory.js';
import { recoverInventory, tracked } from './adopt.js';
import { withOwnership, type KObject } from './objects.js';

const env = 'prod';
const cm = (name: string, app: string, data = 'x'): KObject => withOwnership({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'ns' }, data: { data } } as KObject, env, app);
/** What a metadata-only list answers for an applied object. */
const live = (o: KObject, extra: Partial<KObject['metadata']> = {}): KObject => tracked({ apiVersion: o.apiVersion, kind: o.kind, metadata: { ...o.metadata, resourceVersion: '7', uid: 'u', ...extra } }, env)!;
const record = (app: string, objects: KObject[], over: Partial<AppInventory> = {}): AppInventory => ({
  env,
  app,
  revision: 'r1',
  version: '1',
  template: 't',
  spec: { name: app } as AppInventory['spec'],
  objects,
  appliedAt: '2026-01-01T00:00:00Z',
  ...over,
});
const now = new Date('2026-12-07T12:00:00Z');

describe('tracked', () => {
  it('keeps identity, labels and annotations (without kubectl’s last-applied copy) of an object Keelson applied', () => {
    const o = cm('a', 'web');
    const t = tracked({ ...o, metadata: { ...o.metadata, resourceVersion: '3', managedFields: [], annotations: { ...o.metadata.annotations, 'kubectl.kubernetes.io/last-applied-configuration': '{}' } } }, env);
    expect(t).toEqual({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a', namespace: 'ns', labels: o.metadata.labels, annotations: o.metadata.annotations } });
  });

  it('leaves out hook runs, keelson run Jobs, controller-owned objects, copies of the labels, and other environments', () => {
    const o = cm('a', 'web');
    const m = o.metadata;
    expect(tracked({ ...o, metadata: { ...m, annotations: { ...m.annotations, 'argocd.argoproj.io/hook': 'PostSync' } } }, env)).toBeUndefined();
    expect(tracked({ ...o, metadata: { ...m, annotations: { ...m.annotations, 'helm.sh/hook': 'test' } } }, env)).toBeUndefined();
    expect(tracked({ ...o, metadata: { ...m, labels: { ...m.labels, 'keelson.dev/hook': 'h' } } }, env)).toBeUndefined();
    expect(tracked({ ...o, metadata: { ...m, labels: { ...m.labels, 'keelson.dev/run': 'r' } } }, env)).toBeUndefined();
    expect(tracked({ ...o, metadata: { ...m, ownerReferences: [{ kind: 'Deployment', name: 'web' }] } }, env)).toBeUndefined();
    expect(tracked({ ...o, metadata: { ...m, annotations: {} } }, env)).toBeUndefined();
    expect(tracked(o, 'staging')).toBeUndefined();
  });
});

describe('recoverInventory', () => {
  it('keeps a record that matches what is live, applied hashes included', () => {
    const objs = [cm('a', 'web'), cm('b', 'web')];
    expect(recoverInventory(env, [record('web', objs)], objs.map((o) => live(o)), now)).toEqual({ kept: ['web'], adopted: [], dropped: [] });
  });

  it('adopts the live objects of an app without a record, and of one whose record is outdated (keeping its spec for status)', () => {
    const a = cm('a', 'web');
    const b = cm('b', 'web');
    const r = recoverInventory(env, [record('api', [cm('c', 'api')])], [live(b), live(a), live(cm('c', 'api', 'changed'))], now);
    expect(r.kept).toEqual([]);
    expect(r.dropped).toEqual([]);
    expect(r.adopted.map((i) => [i.app, i.objects.map((o) => o.metadata.name), i.adopted, i.template, i.spec.name])).toEqual([
      ['api', ['c'], { at: now.toISOString(), why: 'outdated' }, '', 'api'],
      ['web', ['a', 'b'], { at: now.toISOString(), why: 'no-record' }, '', 'web'],
    ]);
  });

  it('an object live beyond the record makes it outdated; one handed over by a keep annotation does not', () => {
    const a = cm('a', 'web');
    const extra = live(cm('extra', 'web'));
    expect(recoverInventory(env, [record('web', [a])], [live(a), extra], now).adopted.map((i) => i.app)).toEqual(['web']);
    const handed = live(cm('extra', 'web'), { annotations: { ...extra.metadata.annotations, 'keelson.dev/prune': 'disabled' } });
    expect(recoverInventory(env, [record('web', [a])], [live(a), handed], now).kept).toEqual(['web']);
    const kept = cm('kept', 'web');
    expect(recoverInventory(env, [record('web', [a], { extraneous: [{ object: kept, why: 'Prune=false' }] })], [live(a), live(kept)], now).kept).toEqual(['web']);
  });

  it('drops the record of an app with nothing live (the previous owner pruned it); an adopted record still live stays', () => {
    const a = cm('a', 'web');
    const first = recoverInventory(env, [record('gone', [cm('g', 'gone')])], [live(a)], now);
    expect(first.dropped).toEqual(['gone']);
    expect(recoverInventory(env, first.adopted, [live(a)], now)).toEqual({ kept: ['web'], adopted: [], dropped: [] });
  });
});
