/**
 * Render: YAML documents of an ops repository → DesiredState, plus issues located at `file:line:col`.
 * `renderDocuments` is pure but for the Helm values files it reads (helm-form.ts: present, inside the repository,
 * content digest); `renderRepository` adds the file reading of `loadDocuments`.
 */
import { dirname, join, resolve } from 'node:path';
import { isMap } from 'yaml';
import type { Artifact, DesiredApp, DesiredEnvironment, DesiredState, Probe, SourceRef, TargetSpec } from '../core/model.js';
import type { Issue } from '../core/types.js';
import { dependencyOrder, findCycles } from './graph.js';
import { loadDocuments, type ParsedDoc } from './load.js';
import { realPath, resolvesInside } from '../source/inside.js';
import { formatRef, issueAt, locate, type Anchor, type PathSegment } from './positions.js';
import {
  API_GROUP,
  API_VERSION,
  AppDocumentSchema,
  EnvironmentDocumentSchema,
  KINDS,
  type AppDocument,
  type AppOverrides,
  type EnvironmentDocument,
  type Kind,
  type ProbeSpec,
} from './schema.js';
import { suggest, validate } from './schema-issues.js';
import { toRolloutSpec } from './rollout-schema.js';
import { checkTargetRequirements, hasExplicitReplicas, kubernetesForm } from './app-form.js';
import { resolveDelivery } from './resolve-delivery.js';
import { chartVersionOf, helmForm } from './helm-form.js';
import { checkVersion, resolveJsonnet } from './app-params.js';
import { resolveSecretRefs, type SecretsSource } from '../secrets/refs.js';
import { checkHostUsers, checkKubernetesIsolation, resolveIsolation, userClaim, type UserClaim } from './render-isolation.js';
import { resolveRunAs } from '../targets/local/users.js';
import { policyFor, type EnginePolicy } from '../policy/policy.js';
import { checkTarget } from '../policy/target-check.js';
import { applyHostsAndTls, checkHostClaims, type HostClaim, type TlsSources } from './render-tls.js';

export interface RenderOptions {
  /** Repository root (artifact paths are resolved against it and must stay inside it). */
  root: string;
  /**
   * Environments to render; all when absent. Issues of documents (syntax, schema, duplicate names, App
   * dependencies) are always reported; those of an environment only when it is rendered, except that
   * port conflicts are checked across all environments.
   */
  envs?: string[];
  /**
   * renderRepository only: check what the repository expects of this machine (the users named by `user:` of local
   * environments exist). Default true; `keelson validate --skip-host-checks` turns it off.
   */
  hostChecks?: boolean;
  /**
   * The engine operator's policy (engine configuration, never git): environments' targets, clusters, kubeconfig
   * paths and namespaces are checked against it, and `target.kubernetes.cluster` resolved through it. Absent (an
   * offline `keelson validate`): no checks, and cluster names stay unresolved.
   */
  policy?: EnginePolicy;
}

export interface RenderResult {
  desired: DesiredState;
  /** Sorted by file, line, col. The desired state is only trustworthy when this is empty. */
  issues: Issue[];
  /** The system users the local environments' apps run as, where each is named (for the host check). */
  users?: UserClaim[];
}

interface Decl<T> {
  name: string;
  doc: ParsedDoc;
  value: T;
  source: SourceRef;
}
type AppDecl = Decl<AppDocument>;
type EnvDecl = Decl<EnvironmentDocument>;

/** Where an environment claims a public port, for conflict messages at both ends. */
interface PortClaim {
  env: string;
  app: string;
  port: number;
  doc: ParsedDoc;
  path: PathSegment[];
  anchor: Anchor;
  selected: boolean;
}

export async function renderRepository(opts: RenderOptions & { path?: string }): Promise<RenderResult> {
  const loaded = await loadDocuments(opts.root, opts.path);
  const rendered = renderDocuments(loaded.docs, opts);
  const host = opts.hostChecks === false ? [] : await checkHostUsers(rendered.users ?? [], resolveRunAs);
  return { desired: rendered.desired, issues: sortIssues([...loaded.issues, ...rendered.issues, ...host]), users: rendered.users };
}

export function renderDocuments(docs: readonly ParsedDoc[], opts: RenderOptions): RenderResult {
  const root = resolve(opts.root);
  const issues: Issue[] = [];
  const { apps, envs, invalid } = collect(docs, issues);

  checkAppDependencies(apps, invalid.App, issues);
  for (const app of apps.values()) {
    if (app.value.spec.version !== undefined) checkArtifactPath(root, app, app.value.spec.version, undefined, issues);
  }

  const selected = selectEnvironments(envs, opts.envs, issues);
  const graph = new Map([...apps.values()].map((a) => [a.name, a.value.spec.dependsOn]));
  const environments: DesiredEnvironment[] = [];
  const claims: PortClaim[] = [];
  const users: UserClaim[] = [];
  const hostClaims: HostClaim[] = [];
  for (const env of [...envs.values()].sort(byName)) {
    const isSelected = selected.has(env.name);
    // Issues of environments that are not rendered are dropped; only their port and host claims matter.
    const sink: Issue[] = isSelected ? issues : [];
    const envHosts: HostClaim[] = [];
    const resolved = resolveEnvironment(root, env, apps, invalid.App, sink, isSelected ? users : [], opts.policy, envHosts);
    hostClaims.push(...envHosts.map((c) => ({ ...c, selected: isSelected })));
    // Every local environment shares this machine's ports; other targets have their own.
    // Host-routed environments share their ports by host name (app.env.localhost), so they claim none.
    const own = 'local' in resolved.target && env.value.spec.routing !== 'host' ? portClaims(env, resolved.apps, isSelected) : [];
    claims.push(...own);
    if (!isSelected) continue;
    checkPortsWithinEnvironment(env, own, issues);
    const order = dependencyOrder(resolved.apps.map((a) => a.name), graph);
    const byApp = new Map(resolved.apps.map((a) => [a.name, a]));
    environments.push({ ...resolved, apps: order.map((n) => byApp.get(n)!) });
  }
  checkPortsAcrossEnvironments(claims, issues);
  checkHostClaims(hostClaims, issues);

  return { desired: { environments }, issues: sortIssues(dedupe(issues)).map((i) => ({ ...i })), users };
}

// ---- collect: classify and validate documents ------------------------------------------------

type Classified =
  | { status: 'ignored' }
  | { status: 'invalid'; kind?: Kind; name?: string; issues: Issue[] }
  | { status: 'valid'; kind: 'App'; name: string; value: AppDocument; nameRef: SourceRef; source: SourceRef }
  | { status: 'valid'; kind: 'Environment'; name: string; value: EnvironmentDocument; nameRef: SourceRef; source: SourceRef };

// A document's classification depends on the document alone; loadDocuments reuses ParsedDoc objects for
// unchanged files, so re-rendering a repository only validates what changed.
const classified = new WeakMap<ParsedDoc, Classified>();

function classify(doc: ParsedDoc): Classified {
  let c = classified.get(doc);
  if (!c) {
    c = classifyUncached(doc);
    classified.set(doc, c);
  }
  return c;
}

function classifyUncached(doc: ParsedDoc): Classified {
  if (!isMap(doc.doc.contents)) return { status: 'ignored' };
  let value: Record<string, unknown>;
  try {
    value = doc.doc.toJS({ maxAliasCount: 1000 }) as Record<string, unknown>;
  } catch (err) {
    return { status: 'invalid', issues: [issueAt(doc, [], `cannot read document: ${(err as Error).message}`)] };
  }
  const { apiVersion, kind } = value;
  if (typeof apiVersion !== 'string' || !apiVersion.startsWith(`${API_GROUP}/`)) return { status: 'ignored' };
  if (apiVersion !== API_VERSION) {
    return {
      status: 'invalid',
      issues: [issueAt(doc, ['apiVersion'], `unsupported apiVersion "${apiVersion}"; this Keelson reads ${API_VERSION}`)],
    };
  }
  if (!KINDS.includes(kind as Kind)) {
    const hint = typeof kind === 'string' ? suggest(kind, KINDS) : undefined;
    const what = kind === undefined ? 'missing kind' : `unknown kind ${JSON.stringify(kind)}`;
    const message = `${what} for ${API_VERSION}${hint ? `; did you mean "${hint}"?` : ''} (kinds: ${KINDS.join(', ')})`;
    return { status: 'invalid', issues: [issueAt(doc, ['kind'], message)] };
  }
  const k = kind as Kind;
  const rawName = (value.metadata as { name?: unknown } | null | undefined)?.name;
  const name = typeof rawName === 'string' ? rawName : undefined;
  const subject = name === undefined ? k : `${k} "${name}"`;
  const checked =
    k === 'App' ? validate(AppDocumentSchema, doc, value, subject) : validate(EnvironmentDocumentSchema, doc, value, subject);
  if (!checked.ok) return { status: 'invalid', kind: k, name, issues: checked.issues };
  const refs = { name: name!, nameRef: locate(doc, ['metadata', 'name']), source: locate(doc, []) };
  return k === 'App'
    ? { status: 'valid', kind: k, value: checked.value as AppDocument, ...refs }
    : { status: 'valid', kind: k, value: checked.value as EnvironmentDocument, ...refs };
}

function collect(docs: readonly ParsedDoc[], issues: Issue[]) {
  const apps = new Map<string, AppDecl>();
  const envs = new Map<string, EnvDecl>();
  // Names of documents that failed validation: already reported, so references to them are not.
  const invalid: Record<Kind, Set<string>> = { App: new Set(), Environment: new Set() };
  const seen = new Map<string, SourceRef[]>();

  for (const doc of docs) {
    const c = classify(doc);
    if (c.status === 'ignored') continue;
    if (c.status === 'invalid') {
      issues.push(...c.issues);
      if (c.kind && c.name !== undefined) invalid[c.kind].add(c.name);
      continue;
    }
    const key = `${c.kind}/${c.name}`;
    const refs = seen.get(key);
    if (refs) {
      refs.push(c.nameRef);
      continue;
    }
    seen.set(key, [c.nameRef]);
    if (c.kind === 'App') apps.set(c.name, { name: c.name, doc, value: c.value, source: c.source });
    else envs.set(c.name, { name: c.name, doc, value: c.value, source: c.source });
  }

  for (const [key, refs] of seen) {
    if (refs.length < 2) continue;
    const [k, name] = key.split('/');
    for (const ref of refs) {
      const others = refs.filter((o) => o !== ref).map(formatRef).join(', ');
      issues.push({ ...ref, message: `${k} "${name}" is declared more than once (also at ${others}); names must be unique, rename or remove one` });
    }
  }
  return { apps, envs, invalid };
}

// ---- checks on apps, independent of environments --------------------------------------------

function checkAppDependencies(apps: Map<string, AppDecl>, invalidApps: Set<string>, issues: Issue[]): void {
  for (const app of apps.values()) {
    app.value.spec.dependsOn.forEach((dep, i) => {
      if (apps.has(dep) || invalidApps.has(dep)) return;
      issues.push(
        issueAt(app.doc, ['spec', 'dependsOn', i], `app "${app.name}" depends on "${dep}" but no App named "${dep}" exists${declared(dep, apps)}`),
      );
    });
  }
  const graph = new Map([...apps.values()].map((a) => [a.name, a.value.spec.dependsOn.filter((d) => apps.has(d))]));
  for (const cycle of findCycles(graph)) {
    const [first, next] = cycle;
    const app = apps.get(first)!;
    const i = app.value.spec.dependsOn.indexOf(next);
    const message =
      cycle.length === 2
        ? `app "${first}" depends on itself; remove "${first}" from its dependsOn`
        : `dependency cycle: ${cycle.join(' -> ')}; remove one of these dependsOn entries`;
    issues.push(issueAt(app.doc, ['spec', 'dependsOn', i], message));
  }
}

/** `(declared apps: a, b)` or a did-you-mean, short even for hundreds of apps. */
function declared(name: string, apps: Map<string, unknown>): string {
  const names = [...apps.keys()].sort();
  const hint = suggest(name, names);
  if (hint) return `; did you mean "${hint}"?`;
  if (names.length === 0) return ' (no Apps are declared)';
  const shown = names.slice(0, 10).join(', ');
  return ` (declared apps: ${shown}${names.length > 10 ? `, … ${names.length - 10} more` : ''})`;
}

function substitute(template: string, version: string): string {
  return template.replaceAll('{version}', version);
}

function artifactPath(root: string, app: AppDecl, version: string): string | undefined {
  const p = app.value.spec.artifact?.path;
  return p === undefined ? undefined : resolve(dirname(join(root, app.doc.file)), substitute(p, version));
}

function checkArtifactPath(root: string, app: AppDecl, version: string, env: string | undefined, issues: Issue[]): void {
  const abs = artifactPath(root, app, version);
  // Symlinks resolved: a committed link to a directory outside must not be copied into a release and run.
  if (abs === undefined || resolvesInside(root, abs)) return;
  const via = env === undefined ? '' : ` with version "${version}" of environment "${env}"`;
  issues.push(
    issueAt(
      app.doc,
      ['spec', 'artifact', 'path'],
      `App "${app.name}": artifact path "${app.value.spec.artifact?.path}"${via} resolves to ${realPath(abs)}, outside the repository root ${root}; keep artifacts inside the repository or use artifact.url`,
    ),
  );
}

// ---- environments ----------------------------------------------------------------------------

function selectEnvironments(envs: Map<string, EnvDecl>, wanted: string[] | undefined, issues: Issue[]): Set<string> {
  if (wanted === undefined) return new Set(envs.keys());
  for (const name of wanted) {
    if (envs.has(name)) continue;
    const names = [...envs.keys()].sort();
    const hint = suggest(name, names);
    issues.push({
      file: '.',
      line: 1,
      col: 1,
      message: `no Environment named "${name}" in the repository${hint ? `; did you mean "${hint}"?` : ` (environments: ${names.join(', ') || 'none'})`}`,
    });
  }
  return new Set(wanted);
}

function resolveEnvironment(
  root: string,
  env: EnvDecl,
  apps: Map<string, AppDecl>,
  invalidApps: Set<string>,
  issues: Issue[],
  users: UserClaim[],
  policy?: EnginePolicy,
  hostClaims: HostClaim[] = [],
): DesiredEnvironment {
  const listed = env.value.spec.apps ?? {};
  const out: DesiredApp[] = [];
  for (const [name, overrides] of Object.entries(listed)) {
    const app = apps.get(name);
    if (!app) {
      if (invalidApps.has(name)) continue;
      issues.push(
        issueAt(env.doc, ['spec', 'apps', name], `environment "${env.name}" lists app "${name}" but no App named "${name}" exists${declared(name, apps)}`, 'key'),
      );
      continue;
    }
    const desired = resolveApp(root, env.name, app, overrides ?? {});
    checkTargetRequirements(root, env.value.spec.target, env, { name, doc: app.doc, spec: app.value.spec }, issues);
    checkVersion(env, { name, doc: app.doc, spec: app.value.spec }, overrides ?? {}, env.value.spec.target.kubernetes === undefined, issues);
    if (env.value.spec.target.kubernetes !== undefined) {
      Object.assign(desired, kubernetesForm(root, app.doc, app.value.spec, desired.version, hasExplicitReplicas(app.doc, overrides?.replicas)));
      const helm = helmForm(root, { name, doc: app.doc, spec: app.value.spec }, { name: env.name, doc: env.doc, override: overrides?.helm }, issues);
      if (helm) desired.helm = helm;
      // A Helm app without a declared version shows its chart's version (others show the revision).
      if (!desired.version) desired.version = chartVersionOf(desired) ?? '';
      const jsonnet = resolveJsonnet(root, { name, doc: app.doc, spec: app.value.spec }, { doc: env.doc, overrides: overrides ?? {} }, issues);
      if (jsonnet) desired.jsonnet = jsonnet;
      checkKubernetesIsolation(env, app, overrides ?? {}, issues);
    } else {
      Object.assign(desired, resolveIsolation(app.value.spec, overrides ?? {}));
      const runAs = policy ? policyFor(policy, env.name).runAs : undefined;
      if (runAs !== undefined) {
        // The operator's policy names the user this environment's apps run as; the ops repository cannot pick another.
        if (desired.user && desired.user.name !== runAs) {
          const [doc, at] = overrides?.user ? [env.doc, ['spec', 'apps', name, 'user']] : [app.doc, ['spec', 'user']];
          issues.push(issueAt(doc, at as PathSegment[], `App "${name}" runs as "${desired.user.name}", but ${policyFor(policy!, env.name).label} of the engine's policy runs the apps of environment "${env.name}" as "${runAs}"; remove "user:" or set it to "${runAs}"`));
        } else desired.user = { name: runAs, ...(desired.user?.group ? { group: desired.user.group } : {}) };
      }
      const claim = userClaim(env, app, overrides ?? {}, desired.user);
      if (claim) users.push(claim);
    }
    if (env.value.spec.routing === 'host' && desired.port !== undefined) desired.host = `${name}.${env.name}.localhost`;
    const secretSources: SecretsSource[] = [];
    if (app.value.spec.secrets) secretSources.push({ doc: app.doc, at: ['spec', 'secrets'], secrets: app.value.spec.secrets });
    if (overrides?.secrets) secretSources.push({ doc: env.doc, at: ['spec', 'apps', name, 'secrets'], secrets: overrides.secrets });
    const secrets = resolveSecretRefs(root, name, secretSources, desired.vars, issues);
    if (secrets) desired.secrets = secrets;
    const tlsSources: TlsSources = {};
    const appAt = ['spec', 'apps', name];
    if (overrides?.hosts) tlsSources.hosts = { doc: env.doc, at: [...appAt, 'hosts'], value: overrides.hosts };
    else if (app.value.spec.hosts) tlsSources.hosts = { doc: app.doc, at: ['spec', 'hosts'], value: app.value.spec.hosts };
    if (overrides?.tls) tlsSources.tls = { doc: env.doc, at: [...appAt, 'tls'], value: overrides.tls };
    else if (app.value.spec.tls) tlsSources.tls = { doc: app.doc, at: ['spec', 'tls'], value: app.value.spec.tls };
    hostClaims.push(...applyHostsAndTls(root, desired, tlsSources, env.value.spec.target.kubernetes !== undefined, issues));
    if (overrides?.version !== undefined && overrides.version !== app.value.spec.version) {
      checkArtifactPath(root, app, overrides.version, env.name, issues);
    }
    for (const dep of desired.dependsOn) {
      if (!apps.has(dep) || dep in listed) continue;
      issues.push(
        issueAt(
          env.doc,
          ['spec', 'apps', name],
          `environment "${env.name}" lists app "${name}", which depends on "${dep}", but does not list "${dep}"; add "${dep}" to spec.apps or remove it from dependsOn of App "${name}" (${formatRef(locate(app.doc, ['spec', 'dependsOn', app.value.spec.dependsOn.indexOf(dep)]))})`,
          'key',
        ),
      );
    }
    out.push(desired);
  }
  let target = toTarget(env.value.spec.target);
  if (policy) {
    const checked = checkTarget(policy, env.name, env.value.spec.target);
    target = checked.target;
    for (const v of checked.violations) issues.push(issueAt(env.doc, v.path, v.message, v.anchor));
  }
  const resolved: DesiredEnvironment = { name: env.name, target, apps: out, source: env.source };
  if (env.value.spec.expiresAt !== undefined) resolved.expiresAt = new Date(env.value.spec.expiresAt).toISOString();
  Object.assign(resolved, resolveDelivery(env.value.spec, out.map((a) => [a.name, apps.get(a.name)!.value.spec.hooks])));
  return resolved;
}

function toTarget(t: EnvironmentDocument['spec']['target']): TargetSpec {
  return t.kubernetes !== undefined ? { kubernetes: structuredClone(t.kubernetes) } : { local: {} };
}

function resolveApp(root: string, env: string, app: AppDecl, ov: AppOverrides): DesiredApp {
  const spec = app.value.spec;
  const version = ov.version ?? spec.version ?? '';
  const artifact: Artifact =
    spec.artifact?.url !== undefined
      ? { url: substitute(spec.artifact.url, version), sha256: spec.artifact.sha256 }
      : spec.artifact?.path !== undefined ? { path: artifactPath(root, app, version) } : {};
  const out: DesiredApp = {
    name: app.name,
    env,
    version,
    artifact,
    command: [...(spec.run.command ?? [])],
    vars: ov.env ? { ...spec.run.env, ...ov.env } : { ...spec.run.env },
    replicas: ov.replicas ?? spec.replicas,
    dependsOn: [...new Set(spec.dependsOn)],
    progressDeadlineSeconds: spec.rollout.progressDeadlineSeconds,
    terminationGracePeriodSeconds: spec.terminationGracePeriodSeconds,
    source: { ...app.source },
  };
  // Absent, not undefined: the desired state is compared and serialized as plain data.
  const port = ov.port ?? spec.port;
  if (port !== undefined) out.port = port;
  if (spec.readiness) out.readiness = toProbe(spec.readiness);
  if (spec.liveness) out.liveness = toProbe(spec.liveness);
  const rollout = toRolloutSpec(spec.rollout);
  if (rollout) out.rollout = rollout;
  // Argo CD compatibility (Kubernetes): an environment entry replaces the App's list.
  const syncOptions = ov.syncOptions ?? spec.syncOptions;
  if (syncOptions?.length) out.syncOptions = [...syncOptions];
  const ignoreDifferences = ov.ignoreDifferences ?? spec.ignoreDifferences;
  if (ignoreDifferences?.length) out.ignoreDifferences = structuredClone(ignoreDifferences);
  return out;
}

function toProbe(p: ProbeSpec): Probe {
  const probe: Probe = {
    initialDelaySeconds: p.initialDelaySeconds,
    periodSeconds: p.periodSeconds,
    timeoutSeconds: p.timeoutSeconds,
    failureThreshold: p.failureThreshold,
    successThreshold: p.successThreshold,
  };
  if (p.http) probe.http = p.http.port === undefined ? { path: p.http.path } : { path: p.http.path, port: p.http.port };
  if (p.tcp) probe.tcp = p.tcp.port === undefined ? {} : { port: p.tcp.port };
  if (p.exec) probe.exec = { command: [...p.exec.command] };
  return probe;
}

// ---- public ports (local target: every environment shares this machine) ----------------------

function portClaims(env: EnvDecl, apps: DesiredApp[], selected: boolean): PortClaim[] {
  const listed = env.value.spec.apps ?? {};
  return apps
    .filter((a) => a.port !== undefined)
    .map((a) => {
      // Point at the override if the environment sets the port, else at the environment's entry for the app.
      const own = listed[a.name]?.port !== undefined;
      return {
        env: env.name,
        app: a.name,
        port: a.port!,
        doc: env.doc,
        path: own ? ['spec', 'apps', a.name, 'port'] : ['spec', 'apps', a.name],
        anchor: own ? 'value' : 'key',
        selected,
      };
    });
}

function claimIssue(c: PortClaim, message: string): Issue {
  return issueAt(c.doc, c.path, message, c.anchor);
}

function checkPortsWithinEnvironment(env: EnvDecl, claims: PortClaim[], issues: Issue[]): void {
  for (const group of groupBy(claims, (c) => c.port).values()) {
    if (group.length < 2) continue;
    for (const c of group) {
      const others = group.filter((o) => o !== c).map((o) => `"${o.app}"`).join(', ');
      issues.push(claimIssue(c, `environment "${env.name}": apps "${c.app}" and ${others} both use port ${c.port}; give each app its own port`));
    }
  }
}

function checkPortsAcrossEnvironments(claims: PortClaim[], issues: Issue[]): void {
  for (const group of groupBy(claims, (c) => c.port).values()) {
    if (new Set(group.map((c) => c.env)).size < 2 || !group.some((c) => c.selected)) continue;
    for (const c of group) {
      const others = group
        .filter((o) => o.env !== c.env)
        .map((o) => `app "${o.app}" of environment "${o.env}" (${formatRef(locate(o.doc, o.path, o.anchor))})`)
        .join(', ');
      issues.push(
        claimIssue(c, `port ${c.port} of app "${c.app}" in environment "${c.env}" is also claimed by ${others}; local environments share this machine, give each a distinct port`),
      );
    }
  }
}

// ---- helpers ---------------------------------------------------------------------------------

function groupBy<T, K>(items: T[], key: (t: T) => K): Map<K, T[]> {
  const m = new Map<K, T[]>();
  for (const it of items) {
    const k = key(it);
    const list = m.get(k);
    if (list) list.push(it);
    else m.set(k, [it]);
  }
  return m;
}

function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function dedupe(issues: Issue[]): Issue[] {
  const seen = new Set<string>();
  return issues.filter((i) => {
    const k = `${i.file}\0${i.line}\0${i.col}\0${i.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

export function sortIssues(issues: Issue[]): Issue[] {
  return [...issues].sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line || a.col - b.col));
}
