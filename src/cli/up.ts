import { serve } from '@hono/node-server';
import { createApi } from '../api/app.js';
import { Authenticator, readTokensFile, tokenEnvVars, tokensFromEnv } from '../api/auth.js';
import { registerProxyMetrics } from '../metrics/proxy-metrics.js';
import { registerCertificateMetrics } from '../metrics/certificate-metrics.js';
import { version } from './version.js';
import { ExitError, errorMessage } from '../core/errors.js';
import { Engine } from '../engine/engine.js';
import { EventBus } from '../core/events.js';
import { createLogger, parseLogFormat } from '../log.js';
import { Metrics } from '../metrics/metrics.js';
import { Notifier } from '../notify/notifier.js';
import { HealthWatch } from '../engine/health-watch.js';
import { Store } from '../store/store.js';
import { LocalTarget } from '../targets/local/local-target.js';
import { describePolicy as describeIsolation } from '../targets/local/isolation.js';
import { createTargetRegistry } from '../targets/default-targets.js';
import { isLoopback, parse, parseDuration, parseListen } from './args.js';
import { resolveUpConfig } from './config.js';
import { describePolicy } from '../policy/policy.js';
import { AutoUpdater } from '../automation/auto-update.js';
import { EngineWriter, parseAuthor } from '../opsrepo/engine-writer.js';
import { ClaimKeeper } from '../claims/keeper.js';
import { claimBackends, repoScope } from '../claims/backends.js';
import { memberBackend, podNamespace } from '../claims/member-backends.js';
import { Membership } from '../claims/members.js';
import { defaultClaimsDir } from '../claims/file-claims.js';
import { claimTimings, timingsProblem, type ClaimTimings } from '../claims/claim.js';
import { engineIdentity } from '../claims/identity.js';
import { Peers } from '../api/peers.js';
import { StatusMirror } from '../targets/kubernetes/status-mirror.js';

/** `keelson up`: the engine, the API and the supervisor until SIGINT/SIGTERM. Apps keep running after it stops. */
export async function up(argv: string[]): Promise<void> {
  const { values } = parse(argv, {
    repo: { type: 'string' },
    branch: { type: 'string' },
    path: { type: 'string' },
    env: { type: 'string', multiple: true },
    listen: { type: 'string' },
    'state-dir': { type: 'string' },
    poll: { type: 'string' },
    config: { type: 'string' },
    'webhook-secret-file': { type: 'string' },
    'tokens-file': { type: 'string' },
    'auto-update-interval': { type: 'string' },
    'commit-author': { type: 'string' },
    'allow-host': { type: 'string', multiple: true },
    'allow-root-apps': { type: 'boolean' },
    'default-user': { type: 'string' },
    'http-port': { type: 'string' },
    'https-port': { type: 'string' },
    'proxy-listen-host': { type: 'string' },
    'trusted-proxy': { type: 'string', multiple: true },
    'log-format': { type: 'string' },
    'claims-dir': { type: 'string' },
    'membership-namespace': { type: 'string' },
    shard: { type: 'boolean' },
    'claim-duration': { type: 'string' },
    'claim-renew': { type: 'string' },
    'claim-retry': { type: 'string' },
    'claim-margin': { type: 'string' },
    'advertise-url': { type: 'string' },
  });
  const cfg = resolveUpConfig({
    repo: values.repo,
    branch: values.branch,
    path: values.path,
    envs: values.env,
    listen: values.listen,
    stateDir: values['state-dir'],
    poll: values.poll,
    config: values.config,
    webhookSecretFile: values['webhook-secret-file'],
    allowedHosts: values['allow-host'],
    allowRootApps: values['allow-root-apps'],
    defaultUser: values['default-user'],
    httpPort: values['http-port'],
    httpsPort: values['https-port'],
    proxyListenHost: values['proxy-listen-host'],
    trustedProxies: values['trusted-proxy'],
  });
  const listen = parseListen(cfg.listen);
  const tokensFile = values['tokens-file'] ?? (process.env.KEELSON_TOKENS_FILE || undefined);
  const auth = new Authenticator([...(tokensFile ? readTokensFile(tokensFile) : []), ...tokensFromEnv()]);
  if (!isLoopback(listen.host) && !auth.enabled) {
    throw new ExitError(2, `refusing to listen on ${listen.host} without authentication: configure API tokens (--tokens-file F, or ${tokenEnvVars.admin} / ${tokenEnvVars.operator} / ${tokenEnvVars.viewer}; create one with \`keelson token create\`) or listen on 127.0.0.1.`);
  }
  const pollMs = parseDuration(cfg.poll);
  let logFormat;
  try {
    logFormat = parseLogFormat(values['log-format'] ?? process.env.KEELSON_LOG_FORMAT);
  } catch (err) {
    throw new ExitError(2, errorMessage(err));
  }
  const log = createLogger({ format: logFormat });
  const store = new Store(cfg.stateDir, { log });
  const bus = new EventBus();
  bus.subscribe((e) => {
    const { type, time, seq: _seq, ...data } = e as Record<string, any>;
    if (type === 'replica.ready' || type === 'source.fetched') return; // frequent and derivable; not history
    store.addEvent({ time, type, env: data.env || undefined, app: data.app || undefined, data });
  });
  let engine: Engine | undefined;
  let mirror: StatusMirror | undefined;
  // Each environment is run by one engine at a time: the one holding its claim (README: "Several engines on one ops
  // repository"); the others stand by.
  const claimsDir = values['claims-dir'] ?? (process.env.KEELSON_CLAIMS_DIR || defaultClaimsDir());
  // Sharding (README: "Sharding"): engines announce themselves, and each claims the environments assigned to it. On in
  // a pod or with --membership-namespace (member Leases), with --shard on one host (member files); off otherwise.
  const identity = engineIdentity(cfg.stateDir);
  const membershipNamespace = values['membership-namespace'] ?? (process.env.KEELSON_MEMBERSHIP_NAMESPACE || podNamespace());
  const sharding = !!membershipNamespace || values.shard === true;
  let membership: Membership | undefined;
  const syncing = new Set<string>();
  bus.subscribe((e) => {
    if (e.type === 'sync.started') syncing.add(e.env);
    if (e.type === 'sync.completed') syncing.delete(e.env);
  });
  const timings = claimTimingsFrom(values);
  // This engine's API as the other engines reach it (README: "The API on every engine"); known once listening.
  let advertiseUrl: string | undefined;
  const advertiseGiven = advertiseFlag(values['advertise-url'] ?? (process.env.KEELSON_ADVERTISE_URL || undefined));
  const claims = new ClaimKeeper({
    identity,
    ...timings,
    advertiseUrl: () => advertiseUrl,
    ...(sharding ? { membership: { members: () => membership?.members() ?? [identity] } } : {}),
    environments: () => engine?.environmentNames() ?? [],
    idle: (env) => !syncing.has(env),
    backendFor: claimBackends({ claimsDir, scope: () => ({ repo: engine!.source.repo, path: engine!.source.path }), specOf: (env) => engine?.targetSpecOf(env), timings }),
    log,
    onAcquired: (env) => {
      engine?.requeue(env);
      mirror?.claimed(env);
    },
  });
  const isolation = { allowRootApps: cfg.allowRootApps, ...(cfg.defaultUser ? { defaultUser: cfg.defaultUser } : {}) };
  const renewBefore = process.env.KEELSON_ACME_RENEW_BEFORE;
  const target = new LocalTarget({
    stateDir: cfg.stateDir,
    store,
    bus,
    log,
    requeue: (env) => engine?.requeue(env),
    isolation,
    proxy: { listenHost: cfg.proxyListenHost, web: { http: cfg.httpPort, https: cfg.httpsPort }, trustedProxies: cfg.trustedProxies },
    acme: {
      ...(renewBefore ? { renewBeforeMs: parseDuration(renewBefore) } : {}),
      ...(process.env.KEELSON_ACME_RETRY_BASE ? { retryBaseMs: parseDuration(process.env.KEELSON_ACME_RETRY_BASE) } : {}),
    },
  });
  // Each environment's spec.target picks its target; the engine talks to the registry only.
  const targets = createTargetRegistry({ local: target, store, bus, log, requeue: (env) => engine?.requeue(env), specOf: (env) => engine?.targetSpecOf(env), stateDir: cfg.stateDir, mayWrite: (env) => claims.holds(env), holdOf: (env) => claims.signal(env) });
  engine = new Engine({ repo: cfg.repo, ref: cfg.branch, path: cfg.path, envs: cfg.envs, stateDir: cfg.stateDir, pollMs, log, store, bus, target: targets, policy: cfg.policy, claims });
  const metrics = new Metrics(bus, {
    processes: () => target.supervisor.status().reduce((n, a) => n + a.instances.length, 0),
    health: () => target.supervisor.status().map((a) => ({ env: a.env, app: a.app, status: engine!.pauses.isPaused(a.env, a.app) ? 'Suspended' : a.health })),
  });
  registerProxyMetrics(metrics.registry, () => target.proxy.stats());
  registerCertificateMetrics(metrics.registry, () => target.tls.views());
  const notifier = new Notifier({ bus, log, environment: (env) => engine!.desiredEnvironment(env), link: (env) => `http://${cfg.listen}/api/v1/status?env=${encodeURIComponent(env)}` });
  notifier.start();
  // Each Kubernetes environment's status as a KeelsonEnvironment in its namespace (`kubectl get kenv -A`), written by
  // the claim holder only.
  mirror = new StatusMirror({
    bus,
    log,
    status: async (env) => (await engine!.status(env)).environments[0],
    specOf: (env) => engine?.targetSpecOf(env),
    mayWrite: (env) => claims.holds(env),
    engine: claims.identity,
  });
  mirror.start();
  // health.changed events (healthDegraded notifications, the event stream, the dashboard).
  new HealthWatch(bus, engine).start();
  // The engine's own commits to the ops repository: GitOps rollback from the API, version automation.
  const authorText = values['commit-author'] ?? (process.env.KEELSON_COMMIT_AUTHOR || undefined);
  let author;
  try {
    author = authorText ? parseAuthor(authorText) : undefined;
  } catch (err) {
    throw new ExitError(2, errorMessage(err));
  }
  const writer = new EngineWriter({ source: engine.source, refresh: () => engine!.refresh(), log, author });
  const autoUpdateMs = values['auto-update-interval'] ? parseDuration(values['auto-update-interval']) : 0;
  const autoUpdater = autoUpdateMs > 0 ? new AutoUpdater({ writer, bus, log, intervalMs: autoUpdateMs }) : undefined;
  const hosts = { listenHost: listen.host, port: listen.port, allowedHosts: cfg.allowedHosts, advertised: [] as string[] };
  const peers = new Peers({ self: identity, peerOf: (env) => claims.peerOf(env), log });
  const api = createApi({ engine, store, metrics, log, webhookSecret: cfg.webhookSecret, auth, version, writer, hosts, peers });

  const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
    const s = serve({ fetch: api.fetch, hostname: listen.host, port: listen.port }, () => resolve(s));
    s.once('error', (err) => reject(new ExitError(1, `cannot listen on ${cfg.listen}: ${errorMessage(err)}`)));
  });
  hosts.port = (server.address() as { port: number }).port; // --listen 127.0.0.1:0 picks one
  advertiseUrl = advertiseGiven ?? defaultAdvertiseUrl(listen.host, hosts.port);
  if (advertiseUrl) hosts.advertised.push(new URL(advertiseUrl).host);
  else log.info({ listen: cfg.listen }, 'this engine advertises no API address: other engines answer requests about its environments with their own view; set --advertise-url (in a pod, the POD_IP environment variable) to have them forwarded here');
  log.info({ listen: cfg.listen, repo: cfg.repo, statedir: cfg.stateDir, pollms: pollMs, engine: claims.identity, claimsdir: claimsDir, advertise: advertiseUrl, claimms: `${timings.durationMs}/${timings.renewMs}/${timings.retryMs}/${timings.marginMs}` }, 'keelson started');
  log.info({ policy: describeIsolation(isolation) }, 'app isolation');
  for (const line of describePolicy(cfg.policy)) log.info({}, line);
  if (!cfg.webhookSecret) log.info({}, 'webhook accepts unsigned requests: no secret configured');
  if (!auth.enabled) log.warn({ listen: cfg.listen }, 'api is read-only: no tokens configured, so sync, pause and resume are disabled; configure tokens to enable them');
  log.info({ url: `http://${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${(server.address() as { port: number }).port}/` }, 'dashboard ready');

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'keelson stopping; supervised apps keep running');
    server.close();
    autoUpdater?.stop();
    await mirror!.stop();
    await engine!.stop().catch((err) => log.error({ err: errorMessage(err) }, 'engine stop failed'));
    await membership?.stop({ leave: true });
    store.close();
    process.exit(0);
  };
  // One bad promise must never take the engine (and with it healing) down.
  process.on('unhandledRejection', (err) => log.error({ err: errorMessage(err) }, 'unhandled rejection'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));

  try {
    if (sharding) {
      await engine.source.init(); // the ops repository's top level and path name the member files of a host
      membership = new Membership({
        id: identity,
        backend: await memberBackend({ namespace: membershipNamespace, claimsDir, scope: repoScope({ repo: engine.source.repo, path: engine.source.path }) }),
        durationMs: timings.durationMs,
        renewMs: timings.renewMs,
        log,
        onChange: () => log.info(claims.engineView(), 'environments assigned to this engine'),
      });
      await membership.start();
    }
    await engine.start();
    if (membership) log.info({ ...claims.engineView(), where: membership.where }, 'sharding: environments assigned to this engine');
    if (autoUpdater) {
      autoUpdater.start();
      log.info({ intervalms: autoUpdateMs }, 'version automation started');
    }
  } catch (err) {
    // The engine keeps serving status; the loop retries the source.
    log.error({ err: errorMessage(err) }, 'engine start failed');
    throw new ExitError(1, `keelson could not start: ${errorMessage(err)}`);
  }
}

/**
 * The claim timings (README: "Timings"): `--claim-duration`, `--claim-renew`, `--claim-retry`, `--claim-margin`, else
 * `KEELSON_CLAIM_DURATION` … `KEELSON_CLAIM_MARGIN`, else the defaults (scaled to a shorter duration).
 */
function claimTimingsFrom(values: Record<string, unknown>): ClaimTimings {
  const given = (flag: string): number | undefined => {
    const text = (values[flag] as string | undefined) ?? (process.env[`KEELSON_${flag.replace(/-/g, '_').toUpperCase()}`] || undefined);
    if (text === undefined) return undefined;
    try {
      return parseDuration(text);
    } catch (err) {
      throw new ExitError(2, `--${flag}: ${errorMessage(err)}`);
    }
  };
  const t = claimTimings({ durationMs: given('claim-duration'), renewMs: given('claim-renew'), retryMs: given('claim-retry'), marginMs: given('claim-margin') });
  const problem = timingsProblem(t);
  if (problem) throw new ExitError(2, `claim timings: ${problem} (flags --claim-duration, --claim-renew, --claim-retry, --claim-margin)`);
  return t;
}

/** `--advertise-url`: an http(s) URL without credentials, path, query or fragment (trailing slash dropped). */
function advertiseFlag(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new ExitError(2, `--advertise-url "${text}" is not a URL: use e.g. http://10.0.0.5:7070`);
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.username || u.password || (u.pathname !== '/' && u.pathname !== '') || u.search || u.hash) {
    const shown = u.username || u.password ? `${u.protocol}//***@${u.host}${u.pathname}` : text; // credentials never echoed
    throw new ExitError(2, `--advertise-url "${shown}" must be http:// or https:// with host and port only (no credentials, path or query), e.g. http://10.0.0.5:7070`);
  }
  return `${u.protocol}//${u.host}`;
}

/**
 * Without --advertise-url: the listening address when it is one (loopback: reachable by the engines of this host
 * only, which is all that use it); on a wildcard address (0.0.0.0, ::) the pod's IP from `POD_IP` (the chart and the
 * kustomize base set it from the downward API), else none.
 */
function defaultAdvertiseUrl(host: string, port: number): string | undefined {
  const wildcard = host === '0.0.0.0' || host === '::' || host === '';
  const ip = wildcard ? process.env.POD_IP || undefined : host;
  if (!ip) return undefined;
  return `http://${ip.includes(':') ? `[${ip}]` : ip}:${port}`;
}
