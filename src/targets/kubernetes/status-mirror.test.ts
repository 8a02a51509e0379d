import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import type { AppStatusView, EnvironmentStatusView } from '../../engine/engine.js';
import { root } from '../../../test/helpers.js';
import { mirrorStatusOf } from './status-mirror.js';

const app = (name: string, o: Partial<AppStatusView> = {}): AppStatusView => ({
  name,
  version: '1.0.0',
  desiredVersion: '1.0.0',
  revision: 'abc',
  sync: 'Synced',
  health: 'Healthy',
  message: 'ok',
  replicas: { desired: 1, ready: 1, total: 1, updated: 1 },
  instances: [],
  ...o,
});
const env = (apps: AppStatusView[], o: Partial<EnvironmentStatusView> = {}): EnvironmentStatusView => ({
  name: 'prod',
  target: 'kubernetes',
  revision: '0123456789abcdef0123',
  syncing: false,
  phase: 'Active' as EnvironmentStatusView['phase'],
  expiresAt: null,
  syncWindow: null,
  error: null,
  apps,
  ...o,
});

it('an environment is Synced when every app is, and as healthy as its least healthy app', () => {
  expect(mirrorStatusOf(env([app('web'), app('db')]))).toEqual({
    revision: '0123456789abcdef0123',
    shortRevision: '0123456789ab',
    sync: 'Synced',
    health: 'Healthy',
    appsReady: '2/2',
    apps: [
      { name: 'web', version: '1.0.0', sync: 'Synced', health: 'Healthy', message: 'ok' },
      { name: 'db', version: '1.0.0', sync: 'Synced', health: 'Healthy', message: 'ok' },
    ],
  });
  const s = mirrorStatusOf(env([app('web', { sync: 'OutOfSync', health: 'Progressing' }), app('db', { health: 'Degraded' }), app('new', { version: null, health: 'Missing' })]));
  expect(s).toMatchObject({ sync: 'OutOfSync', health: 'Degraded', appsReady: '0/3' });
  expect(s.apps[2].version).toBe('');
  expect(mirrorStatusOf(env([app('web', { sync: 'Failed' }), app('db', { sync: 'OutOfSync' })])).sync).toBe('Failed');
});

it('a render error makes the environment Failed; before the first good render it is Unknown', () => {
  expect(mirrorStatusOf(env([app('web')], { error: { revision: 'r', message: 'bad', issues: [] } })).sync).toBe('Failed');
  expect(mirrorStatusOf(env([], { revision: null }))).toMatchObject({ sync: 'Unknown', revision: '', shortRevision: '', appsReady: '0/0' });
});

it('the Helm chart ships the same CRD as the kustomize base', () => {
  const read = (...p: string[]) => readFileSync(join(root, 'deploy', ...p), 'utf8');
  expect(read('helm', 'keelson', 'crds', 'keelsonenvironment.yaml')).toBe(read('kubernetes', 'keelsonenvironment-crd.yaml'));
});
