import { ExitError, errorMessage } from '../core/errors.js';

const usage = `keelson — GitOps delivery engine

Usage:
  keelson up --repo <dir|url> [--branch B] [--path P] [--env E]... [--listen 127.0.0.1:7070]
             [--state-dir D] [--poll 10s] [--webhook-secret-file F] [--config keelson.yaml]
  keelson validate [--repo R] [--path P]
  keelson status [--env E] [--json]
  keelson diff --env E
  keelson sync --env E [--app A]
  keelson history --env E [--app A] [--json]
  keelson logs --env E --app A [--follow] [--tail N]
  keelson down [--state-dir D]          stop every supervised app and the proxy
  keelson proxy --socket <path>         the proxy process (started by the engine)

Commands that talk to a running engine take --server URL (default http://127.0.0.1:7070,
or KEELSON_SERVER).`;

/** The CLI boundary: every error ends here as a message and an exit code. */
export async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'up':
        return await (await import('./up.js')).up(rest);
      case 'validate':
        return await (await import('./validate.js')).validate(rest);
      case 'status':
      case 'diff':
      case 'sync':
      case 'history':
      case 'logs':
        return await (await import('./client-commands.js')).run(cmd, rest);
      case 'down':
        return await (await import('./down.js')).down(rest);
      case 'proxy':
        return await (await import('../targets/local/proxy/main.js')).runProxyMain(rest);
      case 'version':
      case '--version':
        console.log((await import('./version.js')).version);
        return;
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        console.log(usage);
        return;
      default:
        throw new ExitError(2, `unknown command "${cmd}"\n\n${usage}`);
    }
  } catch (err) {
    if (err instanceof ExitError) {
      if (err.message) console.error(err.message);
      process.exitCode = err.code;
      return;
    }
    console.error(`keelson: internal error: ${errorMessage(err)}\nThis is a bug; please report it with the command you ran.`);
    if (process.env.KEELSON_DEBUG) console.error(err);
    process.exitCode = 70;
  }
}
