/** `keelson promote-rollout` and `keelson rollout`: progressive rollouts of a running engine, over its API. */
import { ExitError } from '../core/errors.js';
import type { RolloutState } from '../rollout/tracker.js';
import { parse } from './args.js';

const options = {
  server: { type: 'string' },
  token: { type: 'string' },
  env: { type: 'string' },
  app: { type: 'string' },
  full: { type: 'boolean' },
  json: { type: 'boolean' },
} as const;

export async function rolloutCommand(cmd: 'promote-rollout' | 'rollout', argv: string[]): Promise<void> {
  const { values } = parse(argv, options);
  if (!values.env || !values.app) throw new ExitError(2, `keelson ${cmd} needs --env and --app`);
  const server = (values.server ?? process.env.KEELSON_SERVER ?? 'http://127.0.0.1:7070').replace(/\/$/, '');
  const token = values.token ?? process.env.KEELSON_TOKEN;
  const path = `/api/v1/environments/${encodeURIComponent(values.env)}/apps/${encodeURIComponent(values.app)}/rollout`;
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) };
  if (cmd === 'rollout') {
    const state = await call<RolloutState>(server, path, { headers });
    console.log(values.json ? JSON.stringify(state, null, 2) : formatRollout(state));
    return;
  }
  const r = await call<{ rollout: RolloutState; full: boolean }>(server, `${path}/promote`, { method: 'POST', headers, body: JSON.stringify({ full: values.full === true }) });
  console.log(values.json ? JSON.stringify(r, null, 2) : `promoted ${values.env}/${values.app} ${r.rollout.from} → ${r.rollout.to}${r.full ? ' (full: remaining pauses and analyses skipped)' : ''}`);
}

export function formatRollout(s: RolloutState): string {
  return [
    `${s.env}/${s.app}  ${s.strategy}  ${s.from} → ${s.to}  ${s.phase}${s.untilPromoted ? ' (waiting for promote-rollout)' : ''}`,
    `  step ${s.step}/${s.steps}, ${s.weight}% of traffic on ${s.to}, revision ${s.revision.slice(0, 7)}`,
    `  ${s.message}`,
  ].join('\n');
}

async function call<T>(server: string, path: string, init: RequestInit): Promise<T> {
  let res: Response;
  try {
    res = await fetch(server + path, init);
  } catch {
    throw new ExitError(1, `cannot reach Keelson at ${server}; is \`keelson up\` running? (set --server or KEELSON_SERVER)`);
  }
  const body = (await res.json().catch(() => ({}))) as { message?: string };
  if (!res.ok) throw new ExitError(1, body.message ?? `${res.status} ${res.statusText}`);
  return body as T;
}
