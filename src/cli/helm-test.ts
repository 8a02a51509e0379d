/** `keelson test --env E --app A`: runs the app's Helm test hooks on the engine and prints each result with its log. */
import { ExitError } from '../core/errors.js';
import type { HelmTestReport } from '../targets/kubernetes/helm-tests.js';
import { parse } from './args.js';
import { call, clientFlags, connection } from './engine-client.js';

export async function helmTest(argv: string[]): Promise<void> {
  const { values } = parse(argv, { ...clientFlags, env: { type: 'string' }, app: { type: 'string' }, json: { type: 'boolean' } });
  if (!values.env || !values.app) throw new ExitError(2, 'usage: keelson test --env E --app A [--json]');
  const conn = connection(values);
  const report = await call<HelmTestReport>(conn, `/api/v1/environments/${encodeURIComponent(values.env)}/apps/${encodeURIComponent(values.app)}/test`, { method: 'POST' });
  if (values.json) console.log(JSON.stringify(report, null, 2));
  else console.log(formatTestReport(report));
  if (!report.ok) process.exitCode = 1;
}

export function formatTestReport(r: HelmTestReport): string {
  const lines: string[] = [];
  for (const t of r.tests) {
    lines.push(`${t.result === 'passed' ? 'PASSED' : 'FAILED'}  ${t.key}  ${t.message}`);
    if (t.log?.trim()) lines.push(...t.log.trimEnd().split('\n').map((l) => `    ${l}`));
  }
  lines.push(r.tests.length ? (r.ok ? `${r.tests.length} passed` : r.message) : r.message);
  return lines.join('\n');
}
