/** `keelson chaos --env E [--app A] --duration 60s --interval 5s [--kill 1] [--dry-run] [--force] [--out PREFIX]`. */
import { writeFile } from 'node:fs/promises';
import { ChaosRefused, chaosMarkdown, runChaos } from '../chaos/chaos.js';
import { ExitError, errorMessage } from '../core/errors.js';
import { parse, parseDuration } from './args.js';

export async function chaos(argv: string[]): Promise<void> {
  const { values } = parse(argv, {
    env: { type: 'string' },
    app: { type: 'string' },
    duration: { type: 'string' },
    interval: { type: 'string' },
    kill: { type: 'string' },
    'dry-run': { type: 'boolean' },
    force: { type: 'boolean' },
    out: { type: 'string' },
    json: { type: 'boolean' },
    server: { type: 'string' },
    token: { type: 'string' },
  });
  if (!values.env) throw new ExitError(2, 'keelson chaos needs --env');
  const kill = Number(values.kill ?? 1);
  if (!Number.isInteger(kill) || kill < 1) throw new ExitError(2, '--kill must be a whole number ≥ 1');
  const server = (values.server ?? process.env.KEELSON_SERVER ?? 'http://127.0.0.1:7070').replace(/\/$/, '');
  const token = values.token ?? process.env.KEELSON_TOKEN;
  try {
    const report = await runChaos({
      server,
      env: values.env,
      app: values.app,
      durationMs: parseDuration(values.duration ?? '60s'),
      intervalMs: parseDuration(values.interval ?? '5s'),
      kill,
      dryRun: values['dry-run'] ?? false,
      force: values.force ?? false,
      headers: token ? { authorization: `Bearer ${token}` } : undefined,
      log: (line) => console.error(line),
    });
    const md = chaosMarkdown(report);
    const prefix = values.out ?? `chaos-${values.env}-${report.startedAt.replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}`;
    await writeFile(`${prefix}.json`, JSON.stringify(report, null, 2) + '\n');
    await writeFile(`${prefix}.md`, md);
    console.log(values.json ? JSON.stringify(report, null, 2) : md);
    console.error(`report saved: ${prefix}.json, ${prefix}.md`);
  } catch (err) {
    if (err instanceof ChaosRefused) throw new ExitError(2, err.message);
    if (err instanceof ExitError) throw err;
    throw new ExitError(1, `chaos failed: ${errorMessage(err)}`);
  }
}
