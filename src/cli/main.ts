import { ExitError, errorMessage } from '../core/errors.js';

const usage = `keelson — GitOps delivery engine

Usage:
  keelson up --repo <dir|url> [--branch B] [--path P] [--env E]... [--listen 127.0.0.1:7070]
             [--state-dir D] [--poll 10s] [--webhook-secret-file F] [--config keelson.yaml]
             [--allow-host NAME]...   (names the API answers to besides localhost/127.0.0.1/[::1])
             [--default-user U | --allow-root-apps]   (as root: who apps without "user:" run as)
             [--http-port 80] [--https-port 443] [--proxy-listen-host 127.0.0.1] [--trusted-proxy ADDR]...
             [--log-format json|pretty]   (HTTPS for Apps' hosts: docs/https.md)
  keelson validate [--repo R] [--path P] [--state-dir D] [--fetch-charts] [--skip-host-checks] [--config F]   (with KEELSON_AGE_KEY_FILE set, secret files must decrypt too)
  keelson status [--env E] [--json]
  keelson diff --env E [--json] [--exit-code]   what a sync would do now (the running revision against live)
  keelson diff --revision R [--env E] [--format text|markdown|json] [--exit-code] [--repo DIR [--state-dir D]]
                                        preview a branch, tag or sha of the ops repository against live
                                        (--repo: no engine needed; live read from the cluster and D's inventory)
  keelson sync --env E [--app A] [--force] [--confirm-prune]   (--force: Kubernetes apply takes over fields other managers own; --confirm-prune: delete objects marked Prune=confirm)
  keelson history --env E [--app A] [--json]
  keelson logs --env E --app A [--follow] [--tail N]
  keelson down [--state-dir D]          stop every supervised app and the proxy
  keelson secret keygen|encrypt|decrypt|edit   SOPS + age secrets (keelson secret help)
  keelson rollout --env E --app A [--json]           state of the app's blue/green or canary rollout
  keelson promote-rollout --env E --app A [--full]  go on past a pause (--full: skip pauses and analyses)
  keelson proxy --socket <path>         the proxy process (started by the engine)
  keelson token create --name N [--role viewer|operator|admin]   a new API token and its tokens-file line
  keelson status --watch [--env E]      live status table, redrawn in place

Environments, promotion, releases (edit the ops repository's working copy: --repo DIR, default .):
  keelson diff-envs A B [--json] [--exit-code]     versions, replicas and config that differ
  keelson env create NAME --from ENV [--set app=version]... [--ttl 2h] [--hosts] [--branch B]
  keelson env list | destroy NAME... | gc [--dry-run]
  keelson env copy-data --from ENV --to ENV --postgres [--app A] [--var DATABASE_URL] [--yes]
  keelson promote APP... --from ENV --to ENV [--all] [--branch NAME] [--yes] [--dry-run]
  keelson release [--repo APP_REPO] [--dry-run]     next version + changelog from Conventional Commits
  keelson run --env E --app A [--timeout 10m] -- CMD [ARGS...]   one-off in the app's release (engine API)
  keelson where APP...                              what version runs where, since when (engine API)
  keelson test --env E --app A [--json]             run the app's Helm test hooks against live; exit 1 on a failure
  keelson update [--dry-run] [--branch B]           commit newest versions allowed by Apps' updatePolicy
Safe delivery:
  keelson rollback --env E --app A [--to REV] [--repo DIR] [--yes] [--push] [--reason TEXT]
                                                    commit the app's declaration as of REV (default: last healthy)
  keelson chaos --env E [--app A] [--duration 60s] [--interval 5s] [--kill 1] [--dry-run] [--force] [--out PREFIX]
                                                    kill random replicas, measure availability through the proxy
  keelson backup list|restore --env E --app A [--backup NAME] [--database-url URL | --var DATABASE_URL] [--state-dir D]

Commands that talk to a running engine take --server URL (default http://127.0.0.1:7070,
or KEELSON_SERVER) and --token T (or KEELSON_TOKEN) when the engine has API tokens.
\`keelson up\` takes --tokens-file F (or KEELSON_TOKENS_FILE, KEELSON_TOKEN_ADMIN/OPERATOR/VIEWER, each at least
32 characters);
without tokens the API and dashboard are read-only and listen on loopback only.
\`keelson up --auto-update-interval 5m\` commits Apps' updatePolicy versions itself (default off);
its commits (and API rollbacks) are authored by --commit-author "Name <email>" (or KEELSON_COMMIT_AUTHOR;
default "Keelson <keelson@localhost>") and need a bare or hosted ops repository.`;

/** The CLI boundary: every error ends here as a message and an exit code. */
export async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'up':
        return await (await import('./up.js')).up(rest);
      case 'validate':
        return await (await import('./validate.js')).validate(rest);
      case 'diff':
        return await (await import('./diff.js')).diff(rest);
      case 'status':
      case 'sync':
      case 'history':
      case 'logs':
        return await (await import('./client-commands.js')).run(cmd, rest);
      case 'token':
        return await (await import('./token.js')).token(rest);
      case 'down':
        return await (await import('./down.js')).down(rest);
      case 'diff-envs':
        return await (await import('./environments.js')).diffEnvs(rest);
      case 'env':
        return await (await import('./environments.js')).env(rest);
      case 'promote':
        return await (await import('./promote.js')).promote(rest);
      case 'release':
        return await (await import('./release.js')).release(rest);
      case 'run':
        return await (await import('./run-where.js')).runOneOff(rest);
      case 'test':
        return await (await import('./helm-test.js')).helmTest(rest);
      case 'where':
        return await (await import('./run-where.js')).where(rest);
      case 'update':
        return await (await import('./update.js')).update(rest);
      case 'rollback':
        return await (await import('./rollback.js')).rollback(rest);
      case 'backup':
        return await (await import('./backup.js')).backup(rest);
      case 'chaos':
        return await (await import('./chaos.js')).chaos(rest);
      case 'secret':
        return await (await import('../secrets/cli.js')).secret(rest);
      case 'promote-rollout':
      case 'rollout':
        return await (await import('./rollout-commands.js')).rolloutCommand(cmd, rest);
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
