import { describe, expect, test } from 'vitest';
import type { StatusView } from '../engine/engine.js';
import { formatStatus } from './client-commands.js';

describe('keelson status', () => {
  test('prints each certificate of an app, with the last error and the retry when an order failed', () => {
    const app = (name: string, certificates: NonNullable<StatusView['environments'][number]['apps'][number]['certificates']>) => ({
      name, version: '1.0.0', desiredVersion: '1.0.0', revision: 'abc1234', sync: 'Synced' as const, health: 'Healthy' as const,
      message: '1/1 replicas ready', replicas: { desired: 1, ready: 1, total: 1, updated: 1 }, instances: [], certificates,
    });
    const cert = { hosts: ['shop.example.com'], source: 'acme' as const, serving: true, serial: '01', nextAttemptAt: null };
    const status = {
      revision: 'abc1234abc1234',
      source: {},
      environments: [
        {
          name: 'prod', target: 'local', revision: 'abc', syncing: false, phase: 'Active', expiresAt: null, syncWindow: null, error: null,
          apps: [
            app('shop', [{ ...cert, state: 'Ready', issuer: 'CN=R11', notAfter: '2027-03-01T00:00:00.000Z', lastRenewal: '2026-12-01T00:00:00.000Z', lastError: null }]),
            app('blog', [{ ...cert, hosts: ['blog.example.com'], state: 'Failed', serving: false, issuer: null, notAfter: null, serial: null, lastRenewal: null, lastError: 'connection refused', nextAttemptAt: '2026-12-07T11:00:00.000Z' }]),
          ],
        },
      ],
    } as unknown as StatusView;
    const text = formatStatus(status);
    expect(text).toContain('  certificate shop shop.example.com (acme): Ready, expires 2027-03-01T00:00:00.000Z, issuer CN=R11, renewed 2026-12-01T00:00:00.000Z');
    expect(text).toContain('  certificate blog blog.example.com (acme): Failed, no certificate yet (plain HTTP)\n    last error: connection refused (retry at 2026-12-07T11:00:00.000Z)');
  });
});
