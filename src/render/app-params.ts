/**
 * App fields resolved per environment that need more than a merge: when `version` is required, and the Jsonnet
 * parameters (the environment's entry over the App's; library directories resolved through symlinks and kept inside
 * the repository). Used by render; reports issues at `file:line:col`.
 */
import { realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { JsonnetParams } from '../core/model.js';
import type { Issue } from '../core/types.js';
import { isInside, toRepoPath, type ParsedDoc } from './load.js';
import { formatRef, issueAt, locate, type PathSegment } from './positions.js';
import type { AppDocument, AppOverrides } from './schema.js';

type AppSpec = AppDocument['spec'];

/**
 * Why an app needs a version, or undefined when nothing uses it: the local target (release directories, status),
 * an `image` (its tag), an artifact or updatePolicy (both name versions). A manifests app without them shows the
 * revision instead.
 */
export function versionNeededBy(spec: AppSpec, localTarget: boolean): string | undefined {
  if (localTarget) return 'the local target runs releases by version';
  if (spec.image !== undefined) return 'its image takes the version as its tag';
  if (spec.artifact !== undefined) return 'its artifact is chosen by version';
  if (spec.updatePolicy !== undefined) return 'its updatePolicy follows versions';
  return undefined;
}

/** An issue at the environment's entry when the app needs a version that neither the App nor the entry sets. */
export function checkVersion(
  env: { name: string; doc: ParsedDoc },
  app: { name: string; doc: ParsedDoc; spec: AppSpec },
  overrides: AppOverrides,
  localTarget: boolean,
  issues: Issue[],
): void {
  if ((overrides.version ?? app.spec.version) !== undefined) return;
  const why = versionNeededBy(app.spec, localTarget);
  if (!why) return;
  issues.push(
    issueAt(
      env.doc,
      ['spec', 'apps', app.name],
      `environment "${env.name}" runs App "${app.name}" (${formatRef(locate(app.doc, ['spec']))}) without a version, but ${why}; add spec.version (a quoted string, e.g. "1.0.0") to the App or version to this entry`,
      'key',
    ),
  );
}

/**
 * The effective Jsonnet parameters of an app in an environment, or undefined when neither declares any.
 * tlas and extVars of the entry replace the App's by name; the entry's libs replace the App's. Libraries are
 * relative to the file declaring them, resolved through symlinks, and must stay inside the repository.
 */
export function resolveJsonnet(
  root: string,
  app: { name: string; doc: ParsedDoc; spec: AppSpec },
  env: { doc: ParsedDoc; overrides: AppOverrides },
  issues: Issue[],
): JsonnetParams | undefined {
  const base = app.spec.jsonnet;
  const over = env.overrides.jsonnet;
  if (!base && !over) return undefined;
  const libsFrom = over?.libs !== undefined ? { doc: env.doc, at: ['spec', 'apps', app.name, 'jsonnet', 'libs'], libs: over.libs } : { doc: app.doc, at: ['spec', 'jsonnet', 'libs'], libs: base?.libs ?? [] };
  const libs: string[] = [];
  libsFrom.libs.forEach((lib, i) => {
    const resolved = resolveLib(root, libsFrom.doc, lib);
    if ('error' in resolved) issues.push(issueAt(libsFrom.doc, [...libsFrom.at, i] as PathSegment[], `App "${app.name}": jsonnet library "${lib}" ${resolved.error}`));
    else libs.push(resolved.path);
  });
  return {
    tlas: { ...base?.tlas, ...over?.tlas },
    extVars: { ...base?.extVars, ...over?.extVars },
    libs,
  };
}

function resolveLib(root: string, doc: ParsedDoc, lib: string): { path: string } | { error: string } {
  const abs = resolve(dirname(join(root, doc.file)), lib);
  let real: string;
  let realRoot: string;
  try {
    realRoot = realpathSync(root);
    real = realpathSync(abs);
  } catch {
    return { error: `does not exist (${toRepoPath(root, abs)}); libs are directories relative to this file` };
  }
  if (!isInside(realRoot, real)) return { error: `resolves to ${real}, outside the repository; keep Jsonnet libraries inside the repository` };
  return { path: toRepoPath(realRoot, real) || '.' };
}
