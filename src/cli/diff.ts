/**
 * `keelson diff`: what a sync would do, from a running engine. `--env E` plans the running revision against live;
 * `--revision R` previews a branch, tag or sha of the ops repository (fetched into the engine's clone) against live,
 * per environment, as text, Markdown for a pull-request comment, or JSON; with `--repo DIR` it runs without an engine,
 * over a local repository (diff-offline.ts). `--exit-code` exits 1 when there are
 * differences, like `git diff --exit-code`.
 */
import { ExitError, errorMessage } from '../core/errors.js';
import type { Preview } from '../engine/engine.js';
import { formatPreviewMarkdown, formatPreviewText, previewHasChanges } from '../diff/preview-format.js';
import { hasChanges, type Plan } from '../plan/plan.js';
import { parse } from './args.js';
import { call, clientFlags, connection } from './engine-client.js';

const formats = ['text', 'markdown', 'json'] as const;

/** Without a running engine: the preview in this process, over a local repository (see diff-offline.ts). */
async function offline(repo: string, revision: string, o: { env?: string; path?: string; 'state-dir'?: string }): Promise<Preview> {
  const { offlinePreview } = await import('./diff-offline.js');
  try {
    return await offlinePreview({ repo, revision, env: o.env, path: o.path, stateDir: o['state-dir'] });
  } catch (err) {
    throw new ExitError(1, errorMessage(err));
  }
}

export async function diff(argv: string[]): Promise<void> {
  const { values } = parse(argv, {
    ...clientFlags,
    env: { type: 'string' },
    revision: { type: 'string' },
    format: { type: 'string' },
    json: { type: 'boolean' },
    'exit-code': { type: 'boolean' },
    repo: { type: 'string' },
    path: { type: 'string' },
    'state-dir': { type: 'string' },
  });
  const format = values.json ? 'json' : (values.format ?? 'text');
  if (!(formats as readonly string[]).includes(format)) throw new ExitError(2, `--format must be one of ${formats.join(', ')}, not "${format}"`);
  const conn = connection(values);
  let changed: boolean;
  if (values.revision !== undefined) {
    const q = new URLSearchParams({ revision: values.revision, ...(values.env ? { env: values.env } : {}) });
    const p = values.repo !== undefined ? await offline(values.repo, values.revision, values) : await call<Preview>(conn, `/api/v1/preview?${q}`);
    console.log(format === 'json' ? JSON.stringify(p, null, 2) : format === 'markdown' ? formatPreviewMarkdown(p) : formatPreviewText(p));
    changed = previewHasChanges(p);
    if (p.issues.length && !values['exit-code']) throw new ExitError(1, '');
  } else {
    if (values.repo !== undefined) throw new ExitError(2, '--repo goes with --revision (a preview without a running engine)');
    if (!values.env) throw new ExitError(2, 'keelson diff needs --env E (the running revision against live) or --revision R (a branch, tag or sha against live)');
    const r = await call<{ text: string; plan: Plan }>(conn, `/api/v1/environments/${encodeURIComponent(values.env)}/plan`);
    if (format === 'markdown') throw new ExitError(2, '--format markdown goes with --revision (a pull-request preview)');
    console.log(format === 'json' ? JSON.stringify(r.plan, null, 2) : r.text);
    changed = hasChanges(r.plan) || r.plan.steps.some((s) => (s.objects ?? []).some((o) => o.action !== 'none'));
  }
  if (values['exit-code'] && changed) throw new ExitError(1, '');
}
