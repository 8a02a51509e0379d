/** `keelson promote-rollout` and `keelson rollout`: progressive rollouts of a running engine, over its API. */
import { ExitError } from '../core/errors.js';
import type { RolloutState } from '../rollout/tracker.js';
import { parse } from './args.js';
import { call, clientFlags, connection } from './engine-client.js';

const options = {
  ...clientFlags,
  env: { type: 'string' },
  app: { type: 'string' },
  full: { type: 'boolean' },
  json: { type: 'boolean' },
} as const;

export async function rolloutCommand(cmd: 'promote-rollout' | 'rollout', argv: string[]): Promise<void> {
  const { values } = parse(argv, options);
  if (!values.env || !values.app) throw new ExitError(2, `keelson ${cmd} needs --env and --app`);
  const conn = connection(values);
  const path = `/api/v1/environments/${encodeURIComponent(values.env)}/apps/${encodeURIComponent(values.app)}/rollout`;
  const headers = { 'content-type': 'application/json' };
  if (cmd === 'rollout') {
    const state = await call<RolloutState>(conn, path, { headers });
    console.log(values.json ? JSON.stringify(state, null, 2) : formatRollout(state));
    return;
  }
  const r = await call<{ rollout: RolloutState; full: boolean }>(conn, `${path}/promote`, { method: 'POST', headers, body: JSON.stringify({ full: values.full === true }) });
  console.log(values.json ? JSON.stringify(r, null, 2) : `promoted ${values.env}/${values.app} ${r.rollout.from} → ${r.rollout.to}${r.full ? ' (full: remaining pauses and analyses skipped)' : ''}`);
}

export function formatRollout(s: RolloutState): string {
  return [
    `${s.env}/${s.app}  ${s.strategy}  ${s.from} → ${s.to}  ${s.phase}${s.untilPromoted ? ' (waiting for promote-rollout)' : ''}`,
    `  step ${s.step}/${s.steps}, ${s.weight}% of traffic on ${s.to}, revision ${s.revision.slice(0, 7)}`,
    `  ${s.message}`,
  ].join('\n');
}

