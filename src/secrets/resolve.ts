/**
 * Secrets between render and the targets:
 * - `digestSecrets` (engine, right after render): decrypts every referenced file once, checks every key exists,
 *   and records a keyed digest per reference in the desired state, so a changed value changes the app's
 *   template and rolls it. Problems are issues at the reference's `file:line:col`; the revision is then not used
 *   and nothing changes live.
 * - `secretValuesFor` (targets, at apply time): the plaintext an app gets — env vars and files — decrypted again
 *   from the checkout and checked against the digests. Plaintext only ever lives in memory here and in the files
 *   the app reads; it is never part of `DesiredApp`.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AppSecrets, DesiredApp, DesiredState, SecretRef } from '../core/model.js';
import type { Issue } from '../core/types.js';
import { formatRef } from '../render/positions.js';
import { OutsideRepositoryError, readFileInside } from '../source/inside.js';
import { KeyError, loadKeyring, type Keyring } from './age-keys.js';
import { declarationOf } from './refs.js';
import { decryptSops, formatOf, SopsError, type Decrypted } from './sops.js';
import { emitPlain, positionOf } from './sops-formats.js';
import { Branch, scalarText, type TreeValue } from './sops-tree.js';

/** Reads a secret file by its repository path (from a checkout, or from the copies a target keeps). */
export type SecretReader = (repoPath: string) => Promise<string>;

/** Reads secret files of a checkout; a file that resolves outside it (a symlink) is refused. */
export function checkoutReader(root: string): SecretReader {
  return (p) => readFileInside(root, p);
}

export interface SecretValues {
  env: Record<string, string>;
  files: { path: string; content: Buffer }[];
}

/** Raised when secrets cannot be produced; the message names files and keys, never values. */
export class SecretsError extends Error {
  constructor(message: string, readonly issues: Issue[] = []) {
    super(message);
    this.name = 'SecretsError';
  }
}

/** A key that is missing in a file, or names a nested value: reported at the reference's `key`. */
class KeyLookupError extends SopsError {}

/** A secret file that is missing or unreadable: reported at the reference's `file`. */
class UnreadableFileError extends SopsError {}

class FileCache {
  private readonly files = new Map<string, Promise<Decrypted>>();
  constructor(private readonly read: SecretReader, private readonly keyring: Keyring) {}

  get(repoPath: string): Promise<Decrypted> {
    let p = this.files.get(repoPath);
    if (!p) {
      p = (async () => {
        let text: string;
        try {
          text = await this.read(repoPath);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (err instanceof OutsideRepositoryError) throw new UnreadableFileError(`secret file ${err.message}`, 'format');
          throw new UnreadableFileError(code === 'ENOENT' ? `secret file ${repoPath} does not exist; commit it (encrypted with \`keelson secret encrypt\`)` : `cannot read secret file ${repoPath} (${code ?? 'error'})`, 'format');
        }
        return decryptSops(text, { format: formatOf(repoPath), keyring: this.keyring, name: repoPath });
      })();
      this.files.set(repoPath, p);
    }
    return p;
  }
}

/** The value at `key` (a top-level key, else a dotted path through nested maps); undefined if absent. */
function lookup(d: Decrypted, key: string): TreeValue | undefined {
  for (const b of d.branches) {
    const direct = b.get(key);
    if (direct !== undefined) return direct;
    let node: TreeValue | undefined = b;
    for (const part of key.split('.')) node = node instanceof Branch ? node.get(part) : undefined;
    if (node !== undefined) return node;
  }
  return undefined;
}

function keysOf(d: Decrypted): string[] {
  return d.branches.flatMap((b) => b.items.filter((i) => typeof i.key === 'string').map((i) => i.key as string));
}

/** The plaintext a reference stands for: one scalar value, or the whole decrypted file in its format. */
async function materialOf(cache: FileCache, ref: SecretRef, what: string): Promise<string> {
  const d = await cache.get(ref.file);
  if (ref.key === undefined) return emitPlain(d.branches, d.format);
  const v = lookup(d, ref.key);
  if (v === undefined) {
    const keys = keysOf(d);
    throw new KeyLookupError(`${what}: no key "${ref.key}" in ${ref.file} (keys: ${keys.slice(0, 20).join(', ') || 'none'})`, 'format');
  }
  const text = scalarText(v);
  if (text === undefined) throw new KeyLookupError(`${what}: "${ref.key}" in ${ref.file} is a ${v === null ? 'null' : 'nested'} value, not a string, number or boolean; name a key that holds one`, 'format');
  return text;
}

function entries(secrets: AppSecrets): { ref: SecretRef; what: string; env?: string; path?: string }[] {
  return [
    ...Object.entries(secrets.env).map(([name, ref]) => ({ ref, what: `secret env ${name}`, env: name })),
    ...Object.entries(secrets.files).map(([path, ref]) => ({ ref, what: `secret file ${path}`, path })),
  ];
}

/**
 * Fills in the digest of every secret reference of `desired` (files relative to `root`). Returns issues for
 * references that cannot be resolved; empty when all is well (or no app has secrets).
 */
export async function digestSecrets(
  desired: DesiredState,
  root: string,
  opts: { keyring?: Keyring; /** Told every decrypted value (the engine's SecretMask). */ reveal?: (app: DesiredApp, value: string) => void } = {},
): Promise<Issue[]> {
  const apps = desired.environments.flatMap((e) => e.apps).filter((a) => a.secrets);
  if (!apps.length) return [];
  const issues: Issue[] = [];
  let keyring: Keyring;
  try {
    keyring = opts.keyring ?? loadKeyring();
  } catch (err) {
    const message = err instanceof KeyError ? err.message : 'cannot load the age identities';
    for (const a of apps) issues.push({ ...a.source, message: `App "${a.name}" in environment "${a.env}" has secrets, but ${message}` });
    return issues;
  }
  const cache = new FileCache(checkoutReader(root), keyring);
  for (const app of apps) {
    for (const e of entries(app.secrets!)) {
      try {
        const material = await materialOf(cache, e.ref, e.what);
        opts.reveal?.(app, material);
        e.ref.digest = keyring.digest(material);
      } catch (err) {
        const at = declarationOf(e.ref);
        const place = at ? (err instanceof KeyLookupError ? at.key : at.file) : app.source;
        const message = err instanceof SopsError ? err.message : 'cannot be decrypted';
        issues.push({ ...place, message: `App "${app.name}" in environment "${app.env}": ${message}` });
      }
    }
  }
  return issues;
}

/**
 * For `keelson validate`: decrypts every secret file the rendered environments' apps reference with `keyring`
 * (MAC verified) and looks up every referenced key, keeping no value. A file that does not decrypt is one issue in
 * that file, at the value or line that failed when known (else 1:1), naming where it is referenced; a missing file or
 * key is an issue at the reference, as the engine reports it.
 */
export async function checkSecrets(desired: DesiredState, root: string, keyring: Keyring): Promise<Issue[]> {
  const cache = new FileCache(checkoutReader(root), keyring);
  const issues: Issue[] = [];
  const undecryptable = new Map<string, { err: unknown; refs: Set<string> }>();
  for (const app of desired.environments.flatMap((e) => e.apps)) {
    if (!app.secrets) continue;
    for (const e of entries(app.secrets)) {
      try {
        await materialOf(cache, e.ref, e.what);
      } catch (err) {
        const at = declarationOf(e.ref);
        if (err instanceof KeyLookupError || err instanceof UnreadableFileError) {
          const place = at ? (err instanceof KeyLookupError ? at.key : at.file) : app.source;
          issues.push({ ...place, message: `App "${app.name}" in environment "${app.env}": ${err.message}` });
          continue;
        }
        const bad = undecryptable.get(e.ref.file) ?? { err, refs: new Set<string>() };
        bad.refs.add(formatRef(at ? at.file : app.source));
        undecryptable.set(e.ref.file, bad);
      }
    }
  }
  for (const [file, { err, refs }] of undecryptable) {
    const where = err instanceof SopsError ? err.where : {};
    const text = where.path ? await readFile(join(root, file), 'utf8').catch(() => '') : '';
    const pos = where.pos ?? (where.path && positionOf(text, formatOf(file), where.path)) ?? { line: 1, col: 1 };
    // The messages name the file first; here the file is the location. "Nothing was changed" is for the engine.
    const detail = err instanceof SopsError ? err.message.replace(`${file}: `, '').replace(/ Nothing was changed\.$/, '') : 'cannot be decrypted';
    issues.push({ file, ...pos, message: `${detail} (referenced at ${[...refs].join(', ')})` });
  }
  return issues;
}

/**
 * The plaintext of an app's secrets (for the local target's processes, and for the Kubernetes target to render a
 * Secret). Verifies each value still has the digest the desired state recorded, so what runs is what was planned.
 */
export async function secretValuesFor(app: DesiredApp, read: SecretReader, opts: { keyring?: Keyring } = {}): Promise<SecretValues> {
  const out: SecretValues = { env: {}, files: [] };
  if (!app.secrets) return out;
  const keyring = opts.keyring ?? loadKeyring();
  const cache = new FileCache(read, keyring);
  for (const e of entries(app.secrets)) {
    let material: string;
    try {
      material = await materialOf(cache, e.ref, e.what);
    } catch (err) {
      throw new SecretsError(`secrets of ${app.env}/${app.name}: ${err instanceof SopsError || err instanceof KeyError ? err.message : 'cannot be decrypted'}`);
    }
    if (e.ref.digest && keyring.digest(material) !== e.ref.digest) {
      throw new SecretsError(`secrets of ${app.env}/${app.name}: ${e.what} from ${e.ref.file} no longer matches the planned digest; the file changed (or the age identity did) since the revision was rendered`);
    }
    if (e.env) out.env[e.env] = material;
    else out.files.push({ path: e.path!, content: Buffer.from(material, 'utf8') });
  }
  return out;
}

/**
 * For the Kubernetes target: an app's secrets as the string data of one Secret object (env vars under their names,
 * files under their path with "/" replaced by "_"), read from the checkout at `root`.
 */
export async function secretDataFor(app: DesiredApp, root: string, opts: { keyring?: Keyring } = {}): Promise<{ env: Record<string, string>; files: Record<string, string> }> {
  const v = await secretValuesFor(app, checkoutReader(root), opts);
  return { env: v.env, files: Object.fromEntries(v.files.map((f) => [f.path.replaceAll('/', '_'), f.content.toString('utf8')])) };
}

/** The secret files an app reads, as repository paths (what a target keeps a ciphertext copy of). */
export function secretFilesOf(app: DesiredApp): string[] {
  return app.secrets ? [...new Set(entries(app.secrets).map((e) => e.ref.file))] : [];
}
