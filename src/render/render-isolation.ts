/**
 * `user:` and `resources:` in render: the environment's entry overrides the App (user as a whole, resources limit by
 * limit); both are local-target fields. `checkHostUsers` is the one host check of rendering: the users named must
 * exist on this machine, reported at the `user:` that names them.
 */
import type { AppResources, AppUser, SourceRef } from '../core/model.js';
import type { Issue } from '../core/types.js';
import type { ParsedDoc } from './load.js';
import { issueAt, locate } from './positions.js';
import { mergeResources } from './schema-isolation.js';

/** Where an environment's app names its user: checked against the machine's user database. */
export interface UserClaim {
  env: string;
  app: string;
  user: AppUser;
  at: SourceRef;
}

interface Decl {
  name: string;
  doc: ParsedDoc;
}

export function resolveIsolation(
  app: { user?: AppUser; resources?: AppResources },
  ov: { user?: AppUser; resources?: AppResources },
): { user?: AppUser; resources?: AppResources } {
  const out: { user?: AppUser; resources?: AppResources } = {};
  const user = ov.user ?? app.user;
  if (user) out.user = { ...user };
  const resources = mergeResources(app.resources, ov.resources);
  if (resources) out.resources = resources;
  return out;
}

/** The claim of an app's user in an environment (local target), located where it is written. */
export function userClaim(env: Decl, app: Decl, ov: { user?: AppUser }, user: AppUser | undefined): UserClaim | undefined {
  if (!user) return undefined;
  const at = ov.user ? locate(env.doc, ['spec', 'apps', app.name, 'user']) : locate(app.doc, ['spec', 'user']);
  return { env: env.name, app: app.name, user, at };
}

/**
 * `user` and `resources` belong to the local form of an App (like `artifact`): an App that also runs on Kubernetes
 * keeps them for its local environments. Written in a Kubernetes environment's entry, they are an error.
 */
export function checkKubernetesIsolation(env: Decl, app: Decl, ov: { user?: unknown; resources?: unknown }, issues: Issue[]): void {
  for (const field of ['user', 'resources'] as const) {
    if (ov[field] === undefined) continue;
    const hint = field === 'user' ? 'set securityContext.runAsUser in the manifests' : 'set resources in the manifests';
    issues.push(issueAt(env.doc, ['spec', 'apps', app.name, field], `"${field}" applies to the local target; environment "${env.name}" runs on Kubernetes (${hint}, or remove it)`, 'key'));
  }
}

/**
 * Each claimed user (and group) must exist in this machine's user database; one lookup per name. `lookup` throws
 * an Error whose message says what is missing.
 */
export async function checkHostUsers(claims: UserClaim[], lookup: (u: AppUser) => Promise<unknown>): Promise<Issue[]> {
  const results = new Map<string, Promise<string | undefined>>();
  const issues: Issue[] = [];
  for (const c of claims) {
    const key = `${c.user.name}:${c.user.group ?? ''}`;
    if (!results.has(key)) results.set(key, lookup(c.user).then(() => undefined, (err: Error) => err.message));
    const problem = await results.get(key);
    if (problem) issues.push({ ...c.at, message: `app "${c.app}" in environment "${c.env}": ${problem}` });
  }
  return issues;
}
