// Usage: npm run build && node bench/claims-failover.mjs file|lease [kills]  (lease: KUBECONFIG of a cluster; makes namespace claims-measure-<pid>)
// Failover time with the default timings: holder "crashes" (stops renewing, no release); time until the standby holds.
import { ClaimKeeper } from '../dist/claims/keeper.js';
import { FileClaims } from '../dist/claims/file-claims.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../dist/log.js';
const log = silentLogger();
const kind = process.argv[2] ?? 'file';
const n = Number(process.argv[3] ?? 5);
let backendFor;
if (kind === 'file') {
  const dir = mkdtempSync(join(tmpdir(), 'claims-measure-'));
  backendFor = () => new FileClaims(dir, 'measure');
} else {
  const { connect } = await import('../dist/targets/kubernetes/client.js');
  const { LeaseClaims } = await import('../dist/claims/lease-claims.js');
  const ns = `claims-measure-${process.pid}`;
  backendFor = (env) => new LeaseClaims(connect({ namespace: ns }).api, ns, env);
}
const times = [];
let holder = new ClaimKeeper({ identity: 'm/0', backendFor, log });
holder.track('dev');
while (!holder.holds('dev')) await new Promise((r) => setTimeout(r, 50));
for (let i = 1; i <= n; i++) {
  const standby = new ClaimKeeper({ identity: `m/${i}`, backendFor, log });
  standby.track('dev');
  await new Promise((r) => setTimeout(r, 3000 + Math.random() * 5000)); // a crash at a random point of the renew period
  const t0 = performance.now();
  await holder.stop({ release: false });
  while (!standby.holds('dev')) await new Promise((r) => setTimeout(r, 20));
  times.push((performance.now() - t0) / 1000);
  console.log(kind, i, times.at(-1).toFixed(2));
  holder = standby;
}
times.sort((a, b) => a - b);
const q = (p) => times[Math.min(times.length - 1, Math.ceil(p * times.length) - 1)];
console.log(kind, `n=${n} median=${q(0.5).toFixed(2)}s p95=${q(0.95).toFixed(2)}s max=${times.at(-1).toFixed(2)}s`);
await holder.stop({ release: true });
process.exit(0);
