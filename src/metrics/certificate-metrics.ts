/** Certificate gauges, read at scrape time from the local target's certificate manager. */
import { Gauge, type Registry } from 'prom-client';
import type { CertificateView } from '../targets/local/tls/certificates.js';

export function registerCertificateMetrics(registry: Registry, views: () => CertificateView[]): void {
  const registers = [registry];
  new Gauge({
    name: 'keelson_certificate_expiry_seconds',
    help: 'Seconds until the served certificate of a host expires (negative once expired).',
    labelNames: ['env', 'app', 'host'],
    registers,
    collect() {
      this.reset();
      const now = Date.now();
      for (const v of views()) {
        if (v.notAfter === null) continue;
        for (const host of v.hosts) this.set({ env: v.env, app: v.app, host }, Math.round((Date.parse(v.notAfter) - now) / 1000));
      }
    },
  });
  new Gauge({
    name: 'keelson_certificate_failing',
    help: '1 while the last ACME order or renewal of a host failed (see keelson status for the error).',
    labelNames: ['env', 'app', 'host'],
    registers,
    collect() {
      this.reset();
      for (const v of views()) for (const host of v.hosts) this.set({ env: v.env, app: v.app, host }, v.lastError === null ? 0 : 1);
    },
  });
}
