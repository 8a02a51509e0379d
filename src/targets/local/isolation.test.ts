import { afterEach, describe, expect, it, vi } from 'vitest';
import type { DesiredApp } from '../../core/model.js';
import { IsolationError, policyFromEnv, runAsFor } from './isolation.js';

/** Who an app runs as, for each engine identity and config (the decision table of docs/isolation.md). */
const app = (user?: DesiredApp['user']): DesiredApp => ({
  name: 'web',
  env: 'prod',
  version: '1',
  artifact: {},
  command: ['node', 'server.js'],
  vars: {},
  replicas: 1,
  dependsOn: [],
  progressDeadlineSeconds: 60,
  terminationGracePeriodSeconds: 30,
  source: { file: 'apps/web.yaml', line: 1, col: 1 },
  ...(user ? { user } : {}),
});

const engineAs = (uid: number) => vi.spyOn(process as { getuid: () => number }, 'getuid').mockReturnValue(uid);

describe('who an app runs as', () => {
  afterEach(() => vi.restoreAllMocks());

  it('an engine that is not root runs apps as itself, and cannot run them as another user', async () => {
    engineAs(1000);
    expect(await runAsFor(app(), {})).toBeUndefined();
    // The config's defaultUser and allowRootApps are for an engine running as root.
    expect(await runAsFor(app(), { defaultUser: 'nobody' })).toBeUndefined();
    await expect(runAsFor(app({ name: 'nobody' }), {})).rejects.toThrow(/names user "nobody", but the engine runs as uid 1000, not root, and cannot start processes as another user/);
  });

  it('an engine running as root refuses apps without user: unless its config says who they run as', async () => {
    engineAs(0);
    const refused = runAsFor(app(), {});
    await expect(refused).rejects.toBeInstanceOf(IsolationError);
    await expect(runAsFor(app(), {})).rejects.toThrow(
      'refusing to run app "web" as root: the engine runs as root and App "web" (apps/web.yaml:1:1) names no user; set "user: <name>" in the App or its environment entry, or in keelson.yaml "defaultUser: <name>" (--default-user, KEELSON_DEFAULT_USER) or "allowRootApps: true" (--allow-root-apps, KEELSON_ALLOW_ROOT_APPS=true)',
    );
    expect(await runAsFor(app(), { allowRootApps: true })).toBeUndefined();
    expect(await runAsFor(app(), { defaultUser: 'nobody' })).toMatchObject({ user: 'nobody', uid: 65534 });
    expect(await runAsFor(app({ name: 'nobody', group: 'root' }), {})).toMatchObject({ user: 'nobody', group: 'root', uid: 65534, gid: 0 });
    // Naming root is running as root.
    await expect(runAsFor(app({ name: 'root' }), {})).rejects.toThrow(/refusing to run app "web" as root \(user "root" of App "web" \(apps\/web\.yaml:1:1\) has uid 0\)/);
    await expect(runAsFor(app({ name: 'keelson-no-such-user' }), {})).rejects.toThrow(/user "keelson-no-such-user" does not exist on this machine/);
    await expect(runAsFor(app(), { defaultUser: 'keelson-no-such-user' })).rejects.toThrow(/^defaultUser of the engine config: user "keelson-no-such-user" does not exist/);
  });

  it('reads the policy from KEELSON_ALLOW_ROOT_APPS and KEELSON_DEFAULT_USER', () => {
    expect(policyFromEnv({ KEELSON_ALLOW_ROOT_APPS: 'true', KEELSON_DEFAULT_USER: 'apps' })).toEqual({ allowRootApps: true, defaultUser: 'apps' });
    expect(policyFromEnv({ KEELSON_ALLOW_ROOT_APPS: '1' })).toEqual({ allowRootApps: true });
    expect(policyFromEnv({})).toEqual({ allowRootApps: false });
  });
});
