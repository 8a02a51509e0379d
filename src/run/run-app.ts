/** The engine side of `keelson run`: checks, runs through the target, records the run in history and events. */
import { TerminalError } from '../core/errors.js';
import type { EventBus } from '../core/events.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/store.js';
import type { Target } from '../targets/target.js';
import { describeArgv, type RunResult, type RunSink } from './one-off.js';

export interface RunDeps {
  target: Target;
  store: Store;
  bus: EventBus;
  log: Logger;
}

export async function runApp(d: RunDeps, env: string, app: string, argv: string[], io: { sink: RunSink; signal?: AbortSignal; timeoutMs?: number }): Promise<RunResult> {
  if (!d.target.runOnce) throw new TerminalError(`the ${d.target.name} target cannot run one-off processes`);
  if (argv.length === 0 || argv.some((a) => typeof a !== 'string') || argv[0] === '') throw new TerminalError('a one-off needs a command: keelson run --env E --app A -- CMD [ARGS...]');
  const command = describeArgv(argv);
  const inv = d.store.inventory(env).find((r) => r.app === app);
  const revision = inv?.revision ?? '';
  const startedAt = new Date().toISOString();
  d.bus.publish({ type: 'run.started', env, app, command });
  d.log.info({ env, app, command }, 'one-off started');
  let result: RunResult;
  try {
    result = await d.target.runOnce(env, app, argv, io);
  } catch (err) {
    const message = (err as Error).message;
    d.bus.publish({ type: 'run.completed', env, app, command, code: null, signal: null, durationMs: 0, message });
    throw new TerminalError(message, { cause: err });
  }
  const ok = result.code === 0;
  const outcome = result.signal ? `killed by ${result.signal}` : `exit ${result.code}`;
  const message = `run ${command}: ${outcome}`;
  d.store.addSync({
    env,
    revision,
    startedAt,
    durationMs: result.durationMs,
    result: ok ? 'Succeeded' : 'Failed',
    summary: message,
    message: ok ? message : `${message}; see the command's output`,
    changes: [{ app, action: 'run', to: inv?.version, message }],
  });
  d.bus.publish({ type: 'run.completed', env, app, command, code: result.code, signal: result.signal, durationMs: result.durationMs, message });
  d.log.info({ env, app, command, code: result.code, signal: result.signal, durationms: result.durationMs }, 'one-off completed');
  return result;
}
