/**
 * Render side of secrets: `spec.secrets` of an App, merged with an Environment's override for it, becomes
 * `DesiredApp.secrets` — references to files (relative to the repository root) and keys, no values. Where each
 * reference was declared is kept aside (not in the desired state, so moving a line rolls nothing) for the
 * `file:line:col` of errors found when the engine decrypts.
 */
import { dirname, join, resolve } from 'node:path';
import type { AppSecrets, SecretRef, SourceRef } from '../core/model.js';
import type { Issue } from '../core/types.js';
import { isInside, toRepoPath, type ParsedDoc } from '../render/load.js';
import { realPath, resolvesInside } from '../source/inside.js';
import { issueAt, locate, type PathSegment } from '../render/positions.js';
import type { SecretsSpec } from './schema.js';

interface Declared {
  /** Where the reference's `file` and `key` are written. */
  file: SourceRef;
  key: SourceRef;
}

const declaredAt = new WeakMap<SecretRef, Declared>();

/** Where a reference was declared (for messages); undefined for a reference not made by render. */
export function declarationOf(ref: SecretRef): Declared | undefined {
  return declaredAt.get(ref);
}

export interface SecretsSource {
  doc: ParsedDoc;
  /** Path of `secrets` inside the document, e.g. ['spec', 'secrets'] or ['spec', 'apps', 'web', 'secrets']. */
  at: PathSegment[];
  secrets: SecretsSpec;
}

/**
 * The app's secrets: the App's own, then the environment's override (env entries replace by name, files by path).
 * Undefined when there are none, so apps without secrets keep the spec (and template hash) they always had.
 */
export function resolveSecretRefs(root: string, appName: string, sources: SecretsSource[], vars: Record<string, string>, issues: Issue[]): AppSecrets | undefined {
  const out: AppSecrets = { env: {}, files: {} };
  let any = false;
  for (const src of sources) {
    src.secrets.env.forEach((e, i) => {
      const ref = reference(root, src, ['env', i], e.file, e.key, issues);
      if (!ref) return;
      out.env[e.name] = ref as SecretRef & { key: string };
      any = true;
      if (e.name in vars) {
        issues.push(issueAt(src.doc, [...src.at, 'env', i, 'name'], `App "${appName}": ${e.name} is set both by run.env and by secrets.env; remove one of them`));
      }
    });
    src.secrets.files.forEach((f, i) => {
      const ref = reference(root, src, ['files', i], f.file, f.key, issues);
      if (!ref) return;
      out.files[f.path] = ref;
      any = true;
    });
  }
  // Two files that nest in each other (a and a/b) cannot both be written.
  const paths = Object.keys(out.files).sort();
  for (let i = 1; i < paths.length; i++) {
    if (paths[i].startsWith(`${paths[i - 1]}/`)) {
      const src = sources[sources.length - 1];
      issues.push(issueAt(src.doc, [...src.at, 'files'], `App "${appName}": secret file paths "${paths[i - 1]}" and "${paths[i]}" nest in each other; give them distinct paths`));
    }
  }
  return any ? out : undefined;
}

/** One reference declared at `src.at` + `at` (its `file` and `key` below that), checked to stay inside the repository. */
export function reference(root: string, src: SecretsSource, at: PathSegment[], file: string, key: string | undefined, issues: Issue[]): SecretRef | undefined {
  const abs = resolve(dirname(join(root, src.doc.file)), file);
  if (!isInside(root, abs) || abs === root || !resolvesInside(root, abs)) {
    issues.push(issueAt(src.doc, [...src.at, ...at, 'file'], `secret file "${file}" resolves to ${realPath(abs)}, outside the repository root ${root}; keep secret files inside the ops repository (no symlinks out of it)`));
    return undefined;
  }
  const ref: SecretRef = { file: toRepoPath(root, abs) };
  if (key !== undefined) ref.key = key;
  declaredAt.set(ref, { file: locate(src.doc, [...src.at, ...at, 'file']), key: locate(src.doc, [...src.at, ...at, key !== undefined ? 'key' : 'file']) });
  return ref;
}
