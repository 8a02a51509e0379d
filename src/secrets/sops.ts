/**
 * SOPS files with age, natively: decrypt (data key via age, every value via AES-GCM with its path as AAD, MAC
 * verified before anything is returned) and encrypt (the same format sops writes). Mirrors getsops/sops
 * `decrypt.DataWithFormat` and `Tree.Encrypt`/`Tree.Decrypt`; see ../../docs/secrets.md.
 *
 * Errors never contain plaintext, the data key or a MAC computed from plaintext.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { Cipher, SopsValueError, isEncrypted } from './sops-cipher.js';
import { emitPlain, FormatError, formatOf, loadPlain, type SopsFormat, type TextPosition } from './sops-formats.js';
import { Branch, Comment, cloneTree, toBytes, walkBranch, type Scalar, type TreeItem, type TreeValue } from './sops-tree.js';
import { Keyring, wrapForRecipient } from './age-keys.js';

export const SOPS_VERSION = '3.9.4';

/** The one rule deciding which values are encrypted (sops allows at most one). */
export type SopsRule =
  | { kind: 'unencrypted_suffix' | 'encrypted_suffix' | 'unencrypted_regex' | 'encrypted_regex' | 'unencrypted_comment_regex' | 'encrypted_comment_regex'; value: string };

const RULE_KEYS = ['unencrypted_suffix', 'encrypted_suffix', 'unencrypted_regex', 'encrypted_regex', 'unencrypted_comment_regex', 'encrypted_comment_regex'] as const;
/** Master-key kinds Keelson cannot use but keeps verbatim on re-encryption (the data key stays the same). */
const FOREIGN_KEYS = ['kms', 'gcp_kms', 'hckms', 'azure_kv', 'hc_vault', 'pgp'] as const;

export interface SopsMetadata {
  age: { recipient: string; enc: string }[];
  lastmodified: string;
  mac: string;
  rule: SopsRule;
  macOnlyEncrypted: boolean;
  version: string;
  /** Non-age master keys, kept as they are. */
  foreign: TreeItem[];
}

/** A SOPS file that cannot be read: bad format, no fitting key, tampering. The message is safe to show. */
export class SopsError extends Error {
  constructor(
    message: string,
    readonly code: 'format' | 'not-encrypted' | 'no-key' | 'mac-mismatch' | 'value' | 'unsupported',
    /** Where in the file the problem is, when known: a value's path (keys from the top) or a parse position. */
    readonly where: { path?: readonly string[]; pos?: TextPosition } = {},
  ) {
    super(message);
    this.name = 'SopsError';
  }
}

export interface Decrypted {
  format: SopsFormat;
  /** The plaintext tree (sops metadata removed), one branch per YAML document. */
  branches: Branch[];
  metadata: SopsMetadata;
  dataKey: Uint8Array;
  /** Holds the IVs of decrypted values, so re-encryption keeps unchanged values' ciphertext. */
  cipher: Cipher;
}

// ---- metadata --------------------------------------------------------------------------------

function str(v: TreeValue | undefined): string | undefined {
  return typeof v === 'string' ? v : typeof v === 'bigint' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : undefined;
}

function extractMetadata(branches: Branch[], format: SopsFormat): { branches: Branch[]; meta: Branch } {
  if (format === 'dotenv') {
    const first = branches[0] ?? new Branch();
    const flat = first.items.filter((i) => typeof i.key === 'string' && i.key.startsWith('sops_'));
    if (!flat.length) throw new SopsError('not a sops file: no sops_* metadata', 'not-encrypted');
    first.items = first.items.filter((i) => !flat.includes(i));
    return { branches, meta: unflatten(flat.map((i) => ({ key: (i.key as string).slice(5), value: i.value }))) };
  }
  let meta: Branch | undefined;
  for (const [bi, b] of branches.entries()) {
    const idx = b.items.findIndex((i) => i.key === 'sops');
    if (idx < 0) continue;
    const v = b.items[idx].value;
    if (bi === 0) {
      if (!(v instanceof Branch)) throw new SopsError('the "sops" entry is not a mapping', 'format');
      meta = v;
    }
    b.items.splice(idx, 1);
  }
  if (!meta) throw new SopsError('not a sops file: no "sops" metadata', 'not-encrypted');
  return { branches, meta };
}

/** sops `unflattenTreeBranch`: `age__list_0__map_enc` → age[0].enc. */
function unflatten(items: TreeItem[]): Branch {
  const root = new Branch();
  for (const { key, value } of items) {
    const tokens = (key as string).split(/(__map_|__list_)/);
    let node: Branch | TreeValue[] = root;
    let k: string | number = tokens[0];
    for (let t = 1; t < tokens.length; t += 2) {
      const next: Branch | TreeValue[] = tokens[t] === '__map_' ? new Branch() : [];
      const child: TreeValue = node instanceof Branch ? node.get(k as string) ?? null : node[k as number] ?? null;
      let container = child as Branch | TreeValue[];
      if (!(child instanceof Branch) && !Array.isArray(child)) {
        container = next;
        if (node instanceof Branch) node.items.push({ key: k as string, value: container });
        else node[k as number] = container;
      }
      node = container;
      if (tokens[t] === '__list_' && !/^\d{1,3}$/.test(tokens[t + 1])) {
        // A huge index would make a sparse list that takes minutes to walk; sops writes 0, 1, 2… for a few keys.
        throw new SopsError(`the sops metadata key sops_${key} has a list index that is not a number below 1000`, 'format');
      }
      k = tokens[t] === '__list_' ? Number(tokens[t + 1]) : tokens[t + 1];
    }
    if (node instanceof Branch) node.items.push({ key: k as string, value });
    else node[k as number] = value;
  }
  return root;
}

function flatten(b: Branch, prefix: string, out: TreeItem[]): void {
  for (const it of b.items) {
    if (typeof it.key !== 'string') continue;
    flattenValue(it.value, prefix + it.key, out);
  }
}

function flattenValue(v: TreeValue, key: string, out: TreeItem[]): void {
  if (v instanceof Branch) return flatten(v, `${key}__map_`, out);
  if (Array.isArray(v)) {
    v.filter((x) => !(x instanceof Comment)).forEach((x, i) => flattenValue(x, `${key}__list_${i}`, out));
    return;
  }
  out.push({ key, value: v });
}

function parseMetadata(meta: Branch): SopsMetadata {
  if (meta.get('key_groups') !== undefined && meta.get('key_groups') !== null) {
    throw new SopsError('sops key_groups (Shamir secret sharing) are not supported; use a flat list of age recipients', 'unsupported');
  }
  const ageList = meta.get('age');
  const age: SopsMetadata['age'] = [];
  if (Array.isArray(ageList)) {
    for (const e of ageList) {
      if (!(e instanceof Branch)) continue;
      const recipient = str(e.get('recipient'));
      const enc = str(e.get('enc'));
      if (recipient && enc) age.push({ recipient, enc });
    }
  }
  const rules = RULE_KEYS.filter((k) => str(meta.get(k)));
  if (rules.length > 1) throw new SopsError(`the sops metadata sets ${rules.join(' and ')}; only one rule is allowed`, 'format');
  const rule: SopsRule = rules.length ? { kind: rules[0], value: str(meta.get(rules[0]))! } : { kind: 'unencrypted_suffix', value: '_unencrypted' };
  if (rule.kind.endsWith('_regex')) {
    try {
      new RegExp(rule.value);
    } catch {
      throw new SopsError(`the sops metadata ${rule.kind} is not a valid regular expression; the file was modified or is corrupt`, 'format');
    }
  }
  const lastmodified = str(meta.get('lastmodified'));
  const mac = str(meta.get('mac'));
  if (!lastmodified) throw new SopsError('the sops metadata has no lastmodified', 'format');
  const mo = meta.get('mac_only_encrypted');
  const foreign = meta.items.filter((i) => typeof i.key === 'string' && (FOREIGN_KEYS as readonly string[]).includes(i.key) && Array.isArray(i.value) && i.value.length > 0);
  return { age, lastmodified, mac: mac ?? '', rule, macOnlyEncrypted: mo === true || mo === 'true', version: str(meta.get('version')) ?? '', foreign };
}

function metadataBranch(m: SopsMetadata): Branch {
  // sops sorts metadata keys by name (stores/metadata.go goToSops)
  const items: TreeItem[] = [
    { key: 'age', value: m.age.map((a) => new Branch([{ key: 'enc', value: a.enc }, { key: 'recipient', value: a.recipient }])) },
    ...m.foreign,
    { key: m.rule.kind, value: m.rule.value },
    { key: 'lastmodified', value: m.lastmodified },
    { key: 'mac', value: m.mac },
    ...(m.macOnlyEncrypted ? [{ key: 'mac_only_encrypted', value: true }] : []),
    { key: 'version', value: m.version },
  ];
  return new Branch(items.sort((a, b) => ((a.key as string) < (b.key as string) ? -1 : 1)));
}

/** Go `t.Format(time.RFC3339)` of a parsed RFC 3339 stamp: fractional seconds dropped, zero offset as Z. */
export function normalizeTimestamp(text: string): string {
  const m = /^(\d{4}-\d\d-\d\d)[Tt](\d\d:\d\d:\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)$/.exec(text.trim());
  if (!m) throw new SopsError('the sops lastmodified stamp is not an RFC 3339 time', 'format');
  const zone = m[4].toUpperCase() === 'Z' || /^[+-]00:00$/.test(m[4]) ? 'Z' : m[4];
  return `${m[1]}T${m[2]}${zone}`;
}

function nowStamp(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

// ---- which values are encrypted (sops shouldBeEncrypted) --------------------------------------

function shouldBeEncrypted(rule: SopsRule, path: string[], stack: string[][], isComment: boolean): boolean {
  const re = (s: string) => new RegExp(s);
  switch (rule.kind) {
    case 'unencrypted_suffix':
      return !path.some((p) => p.endsWith(rule.value));
    case 'encrypted_suffix':
      return path.some((p) => p.endsWith(rule.value));
    case 'unencrypted_regex':
      return !path.some((p) => re(rule.value).test(p));
    case 'encrypted_regex':
      return path.some((p) => re(rule.value).test(p));
    case 'unencrypted_comment_regex':
      return !stack.some((cs) => cs.some((c) => re(rule.value).test(c)));
    case 'encrypted_comment_regex': {
      const last = stack.length - 1;
      return stack.some((cs, i) => cs.some((c, j) => !(isComment && i === last && j === cs.length - 1) && re(rule.value).test(c)));
    }
  }
}

const MAC_ONLY_ENCRYPTED_INIT = createHash('sha256').update('sops').digest();

// ---- decrypt ---------------------------------------------------------------------------------

/**
 * Decrypts a SOPS file in memory and verifies its MAC. `name` is used in messages only (a path, never content).
 */
export async function decryptSops(text: string, opts: { format: SopsFormat; keyring: Keyring; name: string }): Promise<Decrypted> {
  const { format, keyring, name } = opts;
  let loaded: Branch[];
  try {
    loaded = loadPlain(text, format);
  } catch (err) {
    throw new SopsError(`${name}: ${err instanceof FormatError ? err.message : 'cannot be parsed'}`, 'format', { pos: err instanceof FormatError ? err.pos : undefined });
  }
  let extracted: { branches: Branch[]; meta: Branch };
  let metadata: SopsMetadata;
  try {
    extracted = extractMetadata(loaded, format);
    metadata = parseMetadata(extracted.meta);
  } catch (err) {
    throw new SopsError(`${name}: ${(err as Error).message}`, err instanceof SopsError ? err.code : 'format');
  }
  if (!metadata.age.length) {
    throw new SopsError(`${name}: the file has no age recipient; Keelson decrypts sops files encrypted for age keys (add one with \`sops updatekeys\` or re-encrypt with \`keelson secret encrypt --age\`)`, 'unsupported');
  }
  let dataKey: Uint8Array | undefined;
  for (const a of metadata.age) {
    dataKey = await keyring.unwrap(a.enc).catch(() => undefined);
    if (dataKey) break;
  }
  if (!dataKey) {
    const how = keyring.size ? `none of the ${keyring.size} age identities from ${keyring.origin} fits` : 'no age identity is configured; set KEELSON_AGE_KEY or KEELSON_AGE_KEY_FILE';
    throw new SopsError(`${name}: cannot decrypt the data key: ${how} (the file is encrypted for ${metadata.age.map((a) => a.recipient).join(', ')})`, 'no-key');
  }
  if (dataKey.length !== 32) throw new SopsError(`${name}: the decrypted data key has ${dataKey.length} bytes, not 32`, 'format');
  const cipher = new Cipher(dataKey);
  const branches = extracted.branches;
  const hash = createHash('sha512');
  if (metadata.macOnlyEncrypted) hash.update(MAC_ONLY_ENCRYPTED_INIT);
  for (const b of branches) {
    walkBranch(b, [], [], (value, path, stack) => {
      const isComment = value instanceof Comment;
      const encrypted = shouldBeEncrypted(metadata.rule, path, stack, isComment);
      let v: Scalar | Comment = value;
      if (encrypted) {
        const aad = `${path.join(':')}:`;
        if (isComment) {
          // sops: a comment that does not decrypt was probably never encrypted
          try {
            const c = cipher.decrypt((value as Comment).value, aad);
            v = c instanceof Comment ? new Comment(c.value, (value as Comment).inline) : value;
          } catch {
            v = value;
          }
        } else if (typeof value === 'string') {
          try {
            v = cipher.decrypt(value, aad);
          } catch (err) {
            const why = err instanceof SopsValueError ? err.message : 'cannot be decrypted';
            throw new SopsError(`${name}: the value at ${path.join('.') || '(top level)'} cannot be decrypted: ${why}; the file was modified or is corrupt. Nothing was changed.`, 'value', { path });
          }
        } else {
          throw new SopsError(`${name}: the value at ${path.join('.')} should be encrypted but is a plain ${typeof value}; the file was modified`, 'value', { path });
        }
      }
      if ((!metadata.macOnlyEncrypted || encrypted) && !(v instanceof Comment)) hash.update(toBytes(v));
      return v;
    });
  }
  const computed = Buffer.from(hash.digest('hex').toUpperCase(), 'utf8');
  let stored: Buffer;
  try {
    const aad = normalizeTimestamp(metadata.lastmodified);
    const mac = cipher.decrypt(metadata.mac, aad);
    if (typeof mac !== 'string') throw new Error('not a string');
    stored = Buffer.from(mac, 'utf8');
  } catch {
    throw new SopsError(`${name}: MAC mismatch: the stored MAC or its lastmodified stamp does not authenticate; the file was modified or is corrupt. Nothing was changed.`, 'mac-mismatch', {
      path: format === 'dotenv' ? ['sops_mac'] : ['sops', 'mac'],
    });
  }
  if (stored.length !== computed.length || !timingSafeEqual(stored, computed)) {
    throw new SopsError(`${name}: MAC mismatch: the values do not match the file's MAC; the file was modified or is corrupt. Nothing was changed.`, 'mac-mismatch');
  }
  return { format, branches, metadata, dataKey, cipher };
}

/** Decrypted plaintext in the file's own format (what `sops -d` prints). */
export function emitDecrypted(d: Decrypted): string {
  return emitPlain(d.branches, d.format);
}

// ---- encrypt ---------------------------------------------------------------------------------

export interface EncryptOptions {
  format: SopsFormat;
  /** age recipients (`age1…`). */
  recipients: string[];
  /** Default: unencrypted_suffix `_unencrypted`, like sops. */
  rule?: SopsRule;
  macOnlyEncrypted?: boolean;
  /** The file this is an edit of: its data key, IVs and wrapped keys are reused so unchanged values keep their ciphertext. */
  previous?: Decrypted;
  name?: string;
}

/** Encrypts a plaintext tree into a SOPS file that sops reads. */
export async function encryptSops(plain: Branch[], o: EncryptOptions): Promise<string> {
  if (!o.recipients.length) throw new SopsError('encrypting needs at least one age recipient (--age age1…)', 'no-key');
  if (plain.some((b) => b.items.some((i) => i.key === 'sops' || (o.format === 'dotenv' && typeof i.key === 'string' && i.key.startsWith('sops_'))))) {
    throw new SopsError(`${o.name ?? 'the file'} already has sops metadata; to change it, use \`keelson secret edit\``, 'format');
  }
  const rule = o.rule ?? o.previous?.metadata.rule ?? { kind: 'unencrypted_suffix', value: '_unencrypted' };
  const macOnlyEncrypted = o.macOnlyEncrypted ?? o.previous?.metadata.macOnlyEncrypted ?? false;
  const dataKey = o.previous?.dataKey ?? new Uint8Array(randomBytes(32));
  const cipher = o.previous?.cipher ?? new Cipher(dataKey);
  const branches = plain.map((b) => cloneTree(b));
  const hash = createHash('sha512');
  if (macOnlyEncrypted) hash.update(MAC_ONLY_ENCRYPTED_INIT);
  for (const b of branches) {
    walkBranch(b, [], [], (value, path, stack) => {
      const isComment = value instanceof Comment;
      const encrypted = shouldBeEncrypted(rule, path, stack, isComment);
      if ((!macOnlyEncrypted || encrypted) && !isComment) hash.update(toBytes(value));
      if (!encrypted) return value;
      const out = cipher.encrypt(value, `${path.join(':')}:`);
      return isComment ? new Comment(out, (value as Comment).inline) : out;
    });
  }
  const lastmodified = nowStamp();
  const mac = cipher.encrypt(hash.digest('hex').toUpperCase(), lastmodified);
  const age: SopsMetadata['age'] = [];
  for (const recipient of o.recipients) {
    const kept = o.previous?.metadata.age.find((a) => a.recipient === recipient);
    age.push({ recipient, enc: kept?.enc ?? (await wrapForRecipient(dataKey, recipient)) });
  }
  const metadata: SopsMetadata = { age, lastmodified, mac, rule, macOnlyEncrypted, version: SOPS_VERSION, foreign: o.previous?.metadata.foreign ?? [] };
  const meta = metadataBranch(metadata);
  const first = branches[0] ?? new Branch();
  if (!branches.length) branches.push(first);
  if (o.format === 'dotenv') {
    const flat: TreeItem[] = [];
    flatten(meta, 'sops_', flat);
    first.items.push(...flat);
  } else {
    first.items.push({ key: 'sops', value: meta });
  }
  return emitPlain(branches, o.format);
}

/** Parses a plaintext file for encryption; refuses a file that is already encrypted. */
export function parsePlain(text: string, format: SopsFormat, name: string): Branch[] {
  try {
    return loadPlain(text, format);
  } catch (err) {
    throw new SopsError(`${name}: ${err instanceof FormatError ? err.message : 'cannot be parsed'}`, 'format');
  }
}

export { formatOf, isEncrypted, type SopsFormat };
