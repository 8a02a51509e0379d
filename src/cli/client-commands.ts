import { ExitError } from '../core/errors.js';
import { call, clientFlags, connection, request } from './engine-client.js';
import type { StatusView } from '../engine/engine.js';
import type { SyncRecord } from '../store/store.js';
import { parse } from './args.js';
import { withProgress } from './progress.js';
import { watchStatus } from './watch.js';

const common = { ...clientFlags, env: { type: 'string' }, app: { type: 'string' }, json: { type: 'boolean' } } as const;


/** Commands that talk to a running engine over its API. */
export async function run(cmd: string, argv: string[]): Promise<void> {
  const { values } = parse(argv, { ...common, follow: { type: 'boolean', short: 'f' }, tail: { type: 'string' }, watch: { type: 'boolean', short: 'w' }, force: { type: 'boolean' }, 'confirm-prune': { type: 'boolean' } });
  const conn = connection(values);
  const { server, headers: authHeaders } = conn;
  const need = (name: 'env' | 'app') => {
    const v = values[name];
    if (!v) throw new ExitError(2, `keelson ${cmd} needs --${name}`);
    return encodeURIComponent(v);
  };
  switch (cmd) {
    case 'status': {
      if (values.watch) {
        const path = `/api/v1/status${values.env ? `?env=${encodeURIComponent(values.env)}` : ''}`;
        return watchStatus({ server, headers: authHeaders, fetchText: async () => formatStatus(await call<StatusView>(conn, path)) });
      }
      const status = await call<StatusView>(conn, `/api/v1/status${values.env ? `?env=${encodeURIComponent(values.env)}` : ''}`);
      console.log(values.json ? JSON.stringify(status, null, 2) : formatStatus(status));
      return;
    }
    case 'sync': {
      const env = need('env');
      const label = `syncing ${values.env}${values.app ? `/${values.app}` : ''}`;
      const r = await withProgress({ server, headers: authHeaders, env: values.env!, label }, () =>
        call<{ result: string; message: string }>(conn, `/api/v1/environments/${env}/sync`, {
          method: 'POST',
          body: JSON.stringify({ ...(values.app ? { app: values.app } : {}), ...(values.force ? { force: true } : {}), ...(values['confirm-prune'] ? { confirmPrune: true } : {}) }),
          headers: { 'content-type': 'application/json' },
        }),
      );
      console.log(values.json ? JSON.stringify(r, null, 2) : `${r.result}: ${r.message}`);
      if (r.result === 'Failed') throw new ExitError(1, '');
      return;
    }
    case 'history': {
      const q = new URLSearchParams({ env: values.env ?? '', ...(values.app ? { app: values.app } : {}) });
      const r = await call<{ syncs: SyncRecord[] }>(conn, `/api/v1/history?${q}`);
      if (values.json) console.log(JSON.stringify(r.syncs, null, 2));
      else console.log(formatHistory(r.syncs));
      return;
    }
    case 'logs': {
      const path = `/api/v1/environments/${need('env')}/apps/${need('app')}/logs?tail=${values.tail ?? 100}${values.follow ? '&follow=1' : ''}`;
      const res = await request(conn, path);
      if (!res.body) return;
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) process.stdout.write(chunk);
      return;
    }
  }
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

export function formatStatus(s: StatusView): string {
  const out: string[] = [];
  const head = s.revision ? `revision ${s.revision.slice(0, 12)}${s.commit ? ` "${s.commit.message}"` : ''}` : 'no revision fetched yet';
  out.push(head + (s.source.error ? `\nsource error: ${s.source.error}` : ''));
  for (const env of s.environments) {
    out.push('', `ENVIRONMENT ${env.name} (${env.target})${env.phase === 'Expired' ? ` Expired ${env.expiresAt}` : env.expiresAt ? ` expires ${env.expiresAt}` : ''}${env.syncing ? ' syncing…' : ''}`);
    if (env.error) out.push(`  error: ${env.error.message}`);
    if (env.syncWindow) out.push(`  ${env.syncWindow}`);
    if (env.claim && env.claim.state !== 'Active') out.push(`  ${env.claim.message}`);
    if (env.peer) out.push(env.peer.error ? `  ${env.peer.error}` : `  run by engine ${env.peer.engine} (${env.peer.url})`);
    const rows = [['APP', 'VERSION', 'SYNC', 'HEALTH', 'READY', 'REVISION', 'MESSAGE']];
    for (const a of env.apps) {
      const version = a.version && a.desiredVersion && a.version !== a.desiredVersion ? `${a.version}→${a.desiredVersion}` : a.version ?? a.desiredVersion ?? '-';
      rows.push([a.name, version, a.sync, a.health, `${a.replicas.ready}/${a.replicas.desired}`, a.revision?.slice(0, 7) ?? '-', a.message.split('\n')[0]]);
    }
    out.push(table(rows).replace(/^/gm, '  '));
    for (const a of env.apps) {
      for (const c of a.certificates ?? []) {
        const expiry = c.notAfter ? `expires ${c.notAfter}` : 'no certificate yet (plain HTTP)';
        const issuer = c.issuer ? `, issuer ${c.issuer}` : '';
        const renewed = c.lastRenewal ? `, renewed ${c.lastRenewal}` : '';
        out.push(`  certificate ${a.name} ${c.hosts.join(',')} (${c.source}): ${c.state}, ${expiry}${issuer}${renewed}`);
        if (c.lastError) out.push(`    last error: ${c.lastError}${c.nextAttemptAt ? ` (retry at ${c.nextAttemptAt})` : ''}`);
      }
    }
  }
  return out.join('\n');
}

function formatHistory(syncs: SyncRecord[]): string {
  if (syncs.length === 0) return 'no syncs yet';
  const rows = [['ID', 'STARTED', 'ENV', 'REVISION', 'RESULT', 'DURATION', 'SUMMARY']];
  for (const s of syncs) rows.push([String(s.id), s.startedAt, s.env, s.revision.slice(0, 7), s.result, `${(s.durationMs / 1000).toFixed(1)}s`, s.summary]);
  const failed = syncs.filter((s) => s.result === 'Failed').map((s) => `#${s.id}: ${s.message}`);
  return table(rows) + (failed.length ? `\n\nfailures:\n${failed.join('\n')}` : '');
}
