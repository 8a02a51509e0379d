/**
 * Paths that come from git stay inside the repository, symlinks resolved: a committed symlink (`releases/web ->
 * /etc`, `secrets/db.yaml -> ~/.ssh/id_ed25519`) must not make Keelson read, copy or deploy what lies outside. A
 * lexical check (`path.resolve` + prefix) is not enough; every reader of a path from the ops repository checks it
 * with `resolvesInside` (render: artifact, manifests, secret files) or reads through `readFileInside`.
 */
import { lstatSync, readlinkSync, realpathSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';

/** Raised when a path from the repository resolves outside it. */
export class OutsideRepositoryError extends Error {
  readonly code = 'EOUTSIDE';
  constructor(readonly path: string, readonly real: string, readonly root: string) {
    super(`${path} resolves to ${real}, outside the repository ${root} (through a symlink); keep it inside the repository`);
    this.name = 'OutsideRepositoryError';
  }
}

/**
 * The real path of `p`: every symlink resolved, also a dangling one (to where it points). For a path that does not
 * exist, its deepest existing ancestor's real path with the rest appended.
 */
export function realPath(p: string, depth = 0): string {
  let cur = resolve(p);
  const rest: string[] = [];
  for (;;) {
    try {
      return join(realpathSync(cur), ...rest);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
    }
    const link = lstatSync(cur, { throwIfNoEntry: false });
    if (link?.isSymbolicLink() && depth < 40) return join(realPath(resolve(dirname(cur), readlinkSync(cur)), depth + 1), ...rest);
    const parent = dirname(cur);
    if (parent === cur) return join(cur, ...rest);
    rest.unshift(basename(cur));
    cur = parent;
  }
}

function contains(parent: string, child: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** Whether `p` lies inside `root` once the symlinks of both are resolved. */
export function resolvesInside(root: string, p: string): boolean {
  return contains(realPath(root), realPath(p));
}

/** Reads `repoPath` (relative to `root`) after checking it resolves inside `root`. */
export async function readFileInside(root: string, repoPath: string): Promise<string> {
  const abs = resolve(root, repoPath);
  const real = realPath(abs);
  if (!contains(realPath(root), real)) throw new OutsideRepositoryError(repoPath, real, root);
  return readFile(real, 'utf8');
}
