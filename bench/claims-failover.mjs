/**
 * Failover between engines (README: "Several engines on one ops repository"), with the default claim timings (10 s
 * lease, renewed every 3 s, retried every 1 s, writes stopped 3 s before expiry): the engine holding an environment's claim "crashes" (stops renewing,
 * releases nothing) at a random point of its renewal period; measured is the time until the standby engine holds the
 * claim, and so may reconcile. For the two kinds of claim: a file on the host (local environments) and a
 * coordination.k8s.io Lease (Kubernetes environments, on the test control plane when KUBECONFIG is set).
 *
 *   npm run build && node bench/claims-failover.mjs          # BENCH_KILLS=10 per kind
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClaimKeeper } from '../dist/claims/keeper.js';
import { FileClaims } from '../dist/claims/file-claims.js';
import { silentLogger } from '../dist/log.js';
import { fmt, main, stats } from './lib.mjs';

const KILLS = Number(process.env.BENCH_KILLS ?? 10);
const log = silentLogger();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Seconds from each crash of the holder to the standby holding the claim. */
async function failovers(kind, backendFor) {
  const times = [];
  let holder = new ClaimKeeper({ identity: 'bench/0', backendFor, log });
  holder.track('dev');
  while (!holder.holds('dev')) await sleep(50);
  for (let i = 1; i <= KILLS; i++) {
    const standby = new ClaimKeeper({ identity: `bench/${i}`, backendFor, log });
    standby.track('dev');
    await sleep(3000 + Math.random() * 5000); // the crash falls anywhere in the renewal period
    const t0 = performance.now();
    await holder.stop({ release: false });
    while (!standby.holds('dev')) await sleep(20);
    times.push((performance.now() - t0) / 1000);
    console.log(`${kind} failover ${i}/${KILLS}: ${times.at(-1).toFixed(2)} s`);
    holder = standby;
  }
  await holder.stop({ release: true });
  return times;
}

function p95(values) {
  const v = [...values].sort((a, b) => a - b);
  return v[Math.min(v.length - 1, Math.ceil(0.95 * v.length) - 1)];
}

main(
  'claims-failover',
  async () => {
    const result = {};
    const dir = mkdtempSync(join(tmpdir(), 'keelson-claims-bench-'));
    result.file = await failovers('file', () => new FileClaims(dir, 'bench'));
    if (process.env.KUBECONFIG) {
      const { connect } = await import('../dist/targets/kubernetes/client.js');
      const { LeaseClaims } = await import('../dist/claims/lease-claims.js');
      const ns = `claims-bench-${process.pid}`;
      const cluster = connect({ namespace: ns });
      result.lease = await failovers('lease', (env) => new LeaseClaims(cluster.api, ns, env));
      cluster.release?.();
    }
    return result;
  },
  (r) => {
    const row = (label, t) => {
      const s = stats(t);
      return `| ${label} | ${fmt(s.median, 2)} s | ${fmt(p95(t), 2)} s | ${fmt(s.min, 2)} s | ${fmt(s.max, 2)} s | ${s.n} |`;
    };
    const lines = [
      '## Failover between engines (`claims-failover`)',
      '',
      'Two engines on one environment with the default claim timings (lease 10 s, renewed every 3 s, retried every 1 s;',
      '`keelson up --claim-duration/--claim-renew/--claim-retry`). The holder "crashes" (stops renewing, releases nothing)',
      'at a random point of its renewal period; measured is the time until the standby holds the claim and may reconcile.',
      'Bounds by design: a claim file is taken at most the duration plus one retry period after the last renewal (11 s); a',
      'Lease once the standby saw it unchanged for a whole duration, at most the duration plus two retry periods after the',
      'last renewal (12 s, plus the API round trips). A clean stop releases the claim: the standby takes over on its next',
      'look (≤ 1 s).',
      '',
      '| claim | median | p95 | min | max | n |',
      '|---|---|---|---|---|---|',
      row('file on the host (local environments)', r.file),
      ...(r.lease ? [row('coordination.k8s.io Lease (Kubernetes environments, test control plane)', r.lease)] : []),
    ];
    const summary = [{ measure: 'failover, claim file: holder crash → standby holds', value: `${fmt(stats(r.file).median, 2)} s`, goal: '< 15 s', met: stats(r.file).median < 15, peer: '', ratio: '' }];
    if (r.lease) summary.push({ measure: 'failover, Lease: holder crash → standby holds', value: `${fmt(stats(r.lease).median, 2)} s`, goal: '< 15 s', met: stats(r.lease).median < 15, peer: '', ratio: '' });
    return { markdown: lines.join('\n'), summary };
  },
);
