/** `keelson diff-envs` and `keelson env create|list|destroy|gc|copy-data`: they edit the ops repository's working copy. */
import { ExitError } from '../core/errors.js';
import { formatIssue } from '../core/types.js';
import { copyPostgres, databaseUrlOf } from '../data/postgres-copy.js';
import { diffEnvironments, formatEnvDiff } from '../environments/diff-envs.js';
import { formatEnvList, listEnvironments, planCreate, removalChanges } from '../environments/on-demand.js';
import { WorkingCopy } from '../opsrepo/working-copy.js';
import { parse, parseDuration } from './args.js';
import { confirm } from './confirm.js';

const repoFlags = { repo: { type: 'string' }, path: { type: 'string' }, json: { type: 'boolean' } } as const;
const commitFlags = { branch: { type: 'string' }, push: { type: 'boolean' } } as const;

async function renderClean(wc: WorkingCopy, envs?: string[]) {
  const r = await wc.render(envs);
  if (r.issues.length) throw new ExitError(1, `the ops repository has problems (keelson validate):\n${r.issues.map(formatIssue).join('\n')}`);
  return r.desired;
}

export async function diffEnvs(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, { ...repoFlags, 'exit-code': { type: 'boolean' } }, true);
  if (positionals.length !== 2) throw new ExitError(2, 'usage: keelson diff-envs A B [--repo DIR] [--json] [--exit-code]');
  const wc = await WorkingCopy.open(values.repo, values.path);
  const desired = await renderClean(wc, positionals);
  const [a, b] = positionals.map((n) => desired.environments.find((e) => e.name === n)!);
  const d = diffEnvironments(a, b);
  console.log(values.json ? JSON.stringify(d, null, 2) : formatEnvDiff(d));
  if (values['exit-code'] && d.differences.some((x) => x.field !== 'port')) process.exitCode = 1;
}

export async function env(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'create':
      return create(rest);
    case 'list':
    case 'ls':
      return list(rest);
    case 'destroy':
      return destroy(rest);
    case 'gc':
      return gc(rest);
    case 'copy-data':
      return copyData(rest);
    default:
      throw new ExitError(2, `usage: keelson env create|list|destroy|gc|copy-data …${sub ? ` (unknown "${sub}")` : ''}`);
  }
}

async function create(argv: string[]): Promise<void> {
  const { values, positionals } = parse(
    argv,
    {
      ...repoFlags,
      ...commitFlags,
      from: { type: 'string' },
      set: { type: 'string', multiple: true },
      ttl: { type: 'string' },
      owner: { type: 'string' },
      hosts: { type: 'boolean' },
      'port-base': { type: 'string' },
    },
    true,
  );
  const name = positionals[0];
  if (!name || positionals.length > 1 || !values.from) throw new ExitError(2, 'usage: keelson env create NAME --from ENV [--set app=version]... [--ttl 2h] [--hosts] [--repo DIR]');
  const set: Record<string, string> = {};
  for (const s of values.set ?? []) {
    const m = /^([^=]+)=(.+)$/.exec(s);
    if (!m) throw new ExitError(2, `--set ${s}: use app=version`);
    set[m[1]] = m[2];
  }
  const wc = await WorkingCopy.open(values.repo, values.path);
  const plan = await planCreate(wc, {
    name,
    from: values.from,
    set,
    ttlMs: values.ttl ? parseDuration(values.ttl) : undefined,
    owner: values.owner ?? (await wc.owner()),
    routing: values.hosts ? 'host' : 'port',
    portBase: values['port-base'] ? Number(values['port-base']) : undefined,
  });
  const sets = Object.entries(set).map(([a, v]) => `${a}=${v}`).join(', ');
  const message = `Create environment ${name} from ${values.from}${sets ? ` (${sets})` : ''}${plan.expiresAt ? `, expires ${plan.expiresAt}` : ''}\n\nKeelson-Env-Create: ${name}\n`;
  const sha = await wc.commit([{ path: plan.file, content: plan.content }], { message, branch: values.branch, push: values.push });
  // The new file must render cleanly together with the rest (ports, names).
  if (!values.branch) {
    const check = await wc.render();
    if (check.issues.length) console.error(`warning: the repository now has problems:\n${check.issues.map(formatIssue).join('\n')}`);
  }
  if (values.json) {
    console.log(JSON.stringify({ env: name, file: wc.rel(plan.file), commit: sha, ports: plan.ports, expiresAt: plan.expiresAt ?? null }, null, 2));
    return;
  }
  console.log(`created environment ${name} in ${wc.rel(plan.file)} (commit ${sha.slice(0, 7)}${values.branch ? ` on branch ${values.branch}` : ''})`);
  for (const [app, port] of Object.entries(plan.ports)) console.log(`  ${app}: http://127.0.0.1:${port}/`);
  if (values.hosts) console.log(`  apps are reached as http://APP.${name}.localhost:PORT/ on their usual ports`);
  if (plan.expiresAt) console.log(`  expires ${plan.expiresAt}`);
}

async function list(argv: string[]): Promise<void> {
  const { values } = parse(argv, { ...repoFlags, 'on-demand': { type: 'boolean' } });
  const wc = await WorkingCopy.open(values.repo, values.path);
  let envs = await listEnvironments(wc);
  if (values['on-demand']) envs = envs.filter((e) => e.onDemand);
  console.log(values.json ? JSON.stringify(envs, null, 2) : formatEnvList(envs));
}

async function destroy(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, { ...repoFlags, ...commitFlags, force: { type: 'boolean' } }, true);
  if (positionals.length === 0) throw new ExitError(2, 'usage: keelson env destroy NAME... [--force] [--repo DIR]');
  const wc = await WorkingCopy.open(values.repo, values.path);
  const infos = await listEnvironments(wc);
  const locs = [];
  for (const name of positionals) {
    const info = infos.find((e) => e.name === name);
    if (!info) throw new ExitError(1, `no Environment named "${name}"`);
    if (!info.onDemand && !values.force) throw new ExitError(1, `environment "${name}" was not created on demand (no owner or expiry); pass --force to remove it anyway`);
    locs.push(await wc.locateEnvironment(name));
  }
  const sha = await wc.commit(await removalChanges(wc, locs), {
    message: `Destroy environment${positionals.length > 1 ? 's' : ''} ${positionals.join(', ')}\n\nKeelson-Env-Destroy: ${positionals.join(', ')}\n`,
    branch: values.branch,
    push: values.push,
  });
  console.log(`destroyed ${positionals.join(', ')} (commit ${sha.slice(0, 7)}); Keelson stops their apps at its next sync`);
}

async function gc(argv: string[]): Promise<void> {
  const { values } = parse(argv, { ...repoFlags, ...commitFlags, 'dry-run': { type: 'boolean' } });
  const wc = await WorkingCopy.open(values.repo, values.path);
  const expired = (await listEnvironments(wc)).filter((e) => e.expired);
  if (expired.length === 0) {
    console.log('no expired environments');
    return;
  }
  const names = expired.map((e) => e.name);
  if (values['dry-run']) {
    console.log(`would remove: ${names.join(', ')}`);
    return;
  }
  const locs = await Promise.all(names.map((n) => wc.locateEnvironment(n)));
  const sha = await wc.commit(await removalChanges(wc, locs), {
    message: `Remove expired environment${names.length > 1 ? 's' : ''} ${names.join(', ')}\n\n${expired.map((e) => `${e.name}: expired ${e.expiresAt}`).join('\n')}\n\nKeelson-Env-Gc: ${names.join(', ')}\n`,
    branch: values.branch,
    push: values.push,
  });
  console.log(`removed ${names.join(', ')} (commit ${sha.slice(0, 7)})`);
}

async function copyData(argv: string[]): Promise<void> {
  const { values } = parse(argv, {
    ...repoFlags,
    from: { type: 'string' },
    to: { type: 'string' },
    postgres: { type: 'boolean' },
    app: { type: 'string' },
    var: { type: 'string' },
    yes: { type: 'boolean', short: 'y' },
  });
  if (!values.from || !values.to) throw new ExitError(2, 'usage: keelson env copy-data --from ENV --to ENV --postgres [--app A] [--var DATABASE_URL] [--yes]');
  if (!values.postgres) throw new ExitError(2, 'say which data to copy: --postgres (the only kind supported so far)');
  const wc = await WorkingCopy.open(values.repo, values.path);
  const desired = await renderClean(wc, [values.from, values.to]);
  const byName = (n: string) => desired.environments.find((e) => e.name === n)!;
  const variable = values.var ?? 'DATABASE_URL';
  // Secrets (spec.secrets) will be another source of the URL; plain env vars are read here.
  const fromUrl = databaseUrlOf(byName(values.from), variable, values.app);
  const toUrl = databaseUrlOf(byName(values.to), variable, values.app);
  await confirm(`Replace the database of ${values.to} with a copy of ${values.from}'s?`, values.yes);
  const r = await copyPostgres(fromUrl, toUrl);
  console.log(`copied the PostgreSQL database of ${values.from} to ${values.to} (${r.bytes} bytes dumped, ${(r.durationMs / 1000).toFixed(1)}s)`);
}
