/**
 * ACME failures: an order that cannot reach the CA is retried with backoff and reported (status, event), a first
 * order leaves the hosts on plain HTTP, and a failed renewal keeps the previous certificate in service.
 */
import { copyFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import { freePort, tempDir, waitFor } from '../../../../test/helpers.js';
import { EventBus, type Stamped } from '../../../core/events.js';
import { silentLogger } from '../../../log.js';
import { selfSignedCertificate } from '../proxy/testing.js';
import { CertificateManager, type CertificateManagerOptions } from './certificates.js';

function manager(state: string, o: Partial<CertificateManagerOptions> = {}) {
  const bus = new EventBus();
  const events: Stamped[] = [];
  bus.subscribe((e) => events.push(e));
  let publishes = 0;
  const m = new CertificateManager({ stateDir: state, log: silentLogger(), bus, publish: async () => void publishes++, retryBaseMs: 200, ...o });
  onTestFinished(() => m.close());
  return { m, events, publishes: () => publishes };
}

describe('certificate manager', () => {
  test('a first order that cannot reach the CA: Failed with the reason, retried with growing delays, nothing served', async () => {
    const tmp = tempDir('keelson-certs-');
    onTestFinished(() => tmp.cleanup());
    // Nothing listens there: a real connection refused.
    const directory = `https://127.0.0.1:${await freePort()}/dir`;
    const { m, events } = manager(tmp.dir);
    await m.useAcme('prod', 'shop', ['shop.test'], { email: 'ops@shop.test', directory });
    await waitFor('two failures', () => events.filter((e) => e.type === 'certificate.failed').length >= 2, 20_000);
    const failed = events.filter((e) => e.type === 'certificate.failed');
    expect(failed[0]).toMatchObject({ env: 'prod', app: 'shop', hosts: ['shop.test'], renewal: false });
    // Backoff: the second retry waits longer than the first.
    const delays = failed.slice(0, 2).map((e) => Date.parse((e as { retryAt: string }).retryAt) - Date.parse(e.time));
    expect(delays[1]).toBeGreaterThan(delays[0]);
    const [view] = m.views();
    expect(view).toMatchObject({ state: 'Failed', serving: false, notAfter: null });
    expect(view.lastError).toMatch(/^cannot reach the ACME directory https:\/\/127\.0\.0\.1:\d+\/dir: ECONNREFUSED$/);
    expect(view.nextAttemptAt).not.toBeNull();
    expect(m.proxyCertificates()).toEqual([]);
  });

  test('a failed renewal keeps serving the certificate on disk; a restart reuses it without ordering', async () => {
    const tmp = tempDir('keelson-certs-');
    onTestFinished(() => tmp.cleanup());
    const directory = `https://127.0.0.1:${await freePort()}/dir`;
    const first = manager(tmp.dir, { retryBaseMs: 60_000 });
    await first.m.useAcme('prod', 'shop', ['shop.test'], { email: 'ops@shop.test', directory });
    await waitFor('first failure', () => first.events.some((e) => e.type === 'certificate.failed'), 20_000);
    first.m.close();
    // A certificate for the names appears in the certificate's directory (as an earlier order would have left it).
    const certs = join(tmp.dir, 'tls', 'acme', 'certs');
    const [dir] = await readdir(certs);
    const cert = await selfSignedCertificate(join(certs, dir), 'issued', ['shop.test']);
    await copyFile(cert.certFile, join(certs, dir, 'cert.pem'));
    await copyFile(cert.keyFile, join(certs, dir, 'key.pem'));

    // Not due: restored from the index and served, nothing ordered.
    const again = manager(tmp.dir);
    await again.m.restore();
    expect(again.m.proxyCertificates()).toEqual([{ hosts: ['shop.test'], certFile: join(certs, dir, 'cert.pem'), keyFile: join(certs, dir, 'key.pem') }]);
    await again.m.useAcme('prod', 'shop', ['shop.test'], { email: 'ops@shop.test', directory });
    await again.m.idle();
    expect(again.events.filter((e) => e.type.startsWith('certificate.'))).toEqual([]);
    again.m.close();

    // Due for renewal (a margin longer than the lifetime) and the CA unreachable: Failed, still serving.
    const due = manager(tmp.dir, { renewBeforeMs: 10 * 86_400_000 });
    await due.m.restore();
    await due.m.useAcme('prod', 'shop', ['shop.test'], { email: 'ops@shop.test', directory });
    await waitFor('renewal failed', () => due.events.some((e) => e.type === 'certificate.failed'), 20_000);
    expect(due.events.find((e) => e.type === 'certificate.failed')).toMatchObject({ renewal: true });
    expect(due.m.views()[0]).toMatchObject({ state: 'Failed', serving: true });
    expect(due.m.proxyCertificates()).toHaveLength(1);
  });
});
