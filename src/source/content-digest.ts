/**
 * The content digest of a directory: what the engine records for a path artifact (so the same content at another
 * commit has the same spec) and what the local target names and verifies releases by. Shared by both, so the engine
 * does not reach into a target for it.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readFile, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { TerminalError } from '../core/errors.js';

/** Relative path → `d`, `l:<target>` or `f<x|->:<sha256>`. */
export type Manifest = Map<string, string>;

const hashConcurrency = 32;
const inlineReadLimit = 1024 * 1024;

/**
 * sha256 over the sorted relative paths with their type, exec bit and content (symlinks by their target text).
 * Ownership, timestamps and other mode bits do not count.
 */
export async function hashDirectory(dir: string): Promise<string> {
  return digestManifest(await manifestDirectory(dir));
}

export async function manifestDirectory(dir: string): Promise<Manifest> {
  const entries: { rel: string; abs: string; exec: boolean; size: number }[] = [];
  const manifest: Manifest = new Map();
  const walk = async (absDir: string, relDir: string): Promise<void> => {
    const dirents = await readdir(absDir, { withFileTypes: true });
    await Promise.all(
      dirents.map(async (d) => {
        const abs = path.join(absDir, d.name);
        const rel = relDir ? `${relDir}/${d.name}` : d.name;
        if (d.isDirectory()) {
          manifest.set(rel, 'd');
          await walk(abs, rel);
        } else if (d.isSymbolicLink()) {
          manifest.set(rel, `l:${await readlink(abs)}`);
        } else if (d.isFile()) {
          const st = await lstat(abs);
          entries.push({ rel, abs, exec: (st.mode & 0o111) !== 0, size: st.size });
        } else {
          throw new TerminalError(`${abs} is not a file, directory or symlink; releases may only contain those`);
        }
      }),
    );
  };
  await walk(dir, '');
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < entries.length) {
      const e = entries[next++];
      manifest.set(e.rel, `f${e.exec ? 'x' : '-'}:${await sha256Of(e.abs, e.size)}`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(hashConcurrency, entries.length) }, worker));
  return manifest;
}

export function digestManifest(manifest: Manifest): string {
  const hash = createHash('sha256');
  for (const rel of [...manifest.keys()].sort()) hash.update(`${rel}\0${manifest.get(rel)}\0`);
  return hash.digest('hex');
}

async function sha256Of(file: string, size: number): Promise<string> {
  const hash = createHash('sha256');
  if (size <= inlineReadLimit) hash.update(await readFile(file));
  else await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}
