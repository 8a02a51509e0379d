/**
 * age identities (private keys) for SOPS files: `KEELSON_AGE_KEY` (one or more `AGE-SECRET-KEY-1…` lines) or the
 * file named by `KEELSON_AGE_KEY_FILE` (the `age-keygen` / sops `keys.txt` format: `#` comments, one key a line).
 */
import { readFileSync } from 'node:fs';
import { createHmac, hkdfSync } from 'node:crypto';
import { Decrypter, Encrypter, armor, generateX25519Identity, identityToRecipient } from 'age-encryption';

const IDENTITY = /^AGE-SECRET-KEY-(PQ-)?1[0-9A-Z]+$/;

export class KeyError extends Error {}

/** The identities Keelson decrypts with; never logged, never serialized. */
export class Keyring {
  private hmacKey?: Buffer;

  constructor(private readonly identities: readonly string[], readonly origin: string) {}

  get size(): number {
    return this.identities.length;
  }

  async recipients(): Promise<string[]> {
    return Promise.all(this.identities.map((i) => identityToRecipient(i)));
  }

  /** Decrypts an armored age message (a sops `enc` field) to the raw data key; undefined if no identity fits. */
  async unwrap(armored: string): Promise<Uint8Array | undefined> {
    if (!this.identities.length) return undefined;
    let bytes: Uint8Array;
    try {
      bytes = armor.decode(armored);
    } catch {
      throw new KeyError('the age-encrypted data key is not valid ASCII armor');
    }
    const d = new Decrypter();
    for (const id of this.identities) d.addIdentity(id);
    try {
      return await d.decrypt(bytes, 'uint8array');
    } catch {
      return undefined;
    }
  }

  /**
   * A keyed digest of secret material for change detection (what rolls an app when a secret changes). Keyed by a
   * key derived from the identities, so digests in the store, API and diffs cannot be used to guess a value.
   */
  digest(material: string | Uint8Array): string {
    if (!this.hmacKey) {
      const ikm = Buffer.from([...this.identities].sort().join('\n'), 'utf8');
      this.hmacKey = Buffer.from(hkdfSync('sha256', ikm, Buffer.from('keelson'), Buffer.from('keelson secret digest v1'), 32));
    }
    return `hmac-sha256:${createHmac('sha256', this.hmacKey).update(material).digest('hex').slice(0, 32)}`;
  }
}

/** Identity lines of a key file or variable: comments and blank lines skipped, each checked. */
export function parseIdentities(text: string, origin: string): string[] {
  const out: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    // Never echo the line: it is a private key, or a typo of one.
    if (!IDENTITY.test(line)) throw new KeyError(`${origin} line ${i + 1} is not an age identity (expected AGE-SECRET-KEY-1…)`);
    out.push(line);
  });
  return out;
}

export interface KeyringSources {
  env?: NodeJS.ProcessEnv;
  /** Also read SOPS_AGE_KEY / SOPS_AGE_KEY_FILE when no KEELSON_ variable is set (CLI convenience). */
  sopsFallback?: boolean;
}

/** The identities from the environment; an empty keyring when none is configured. Throws KeyError on a bad key. */
export function loadKeyring(o: KeyringSources = {}): Keyring {
  const env = o.env ?? process.env;
  const ids: string[] = [];
  const origins: string[] = [];
  const read = (keyVar: string, fileVar: string) => {
    if (env[keyVar]) {
      ids.push(...parseIdentities(env[keyVar]!, keyVar));
      origins.push(keyVar);
    }
    if (env[fileVar]) {
      let text: string;
      try {
        text = readFileSync(env[fileVar]!, 'utf8');
      } catch (err) {
        throw new KeyError(`cannot read the age key file ${env[fileVar]} (${fileVar}): ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
      }
      ids.push(...parseIdentities(text, `${fileVar} (${env[fileVar]})`));
      origins.push(fileVar);
    }
  };
  read('KEELSON_AGE_KEY', 'KEELSON_AGE_KEY_FILE');
  if (!ids.length && o.sopsFallback) read('SOPS_AGE_KEY', 'SOPS_AGE_KEY_FILE');
  return new Keyring([...new Set(ids)], origins.join(', ') || 'none');
}

/** Wraps a data key for one age recipient, armored as sops stores it. */
export async function wrapForRecipient(dataKey: Uint8Array, recipient: string): Promise<string> {
  const e = new Encrypter();
  try {
    e.addRecipient(recipient);
  } catch {
    throw new KeyError(`"${recipient}" is not an age recipient (expected age1…)`);
  }
  return armor.encode(await e.encrypt(dataKey));
}

/** A new identity in the `age-keygen` file format, and its recipient. */
export async function generateKey(now = new Date()): Promise<{ identity: string; recipient: string; file: string }> {
  const identity = await generateX25519Identity();
  const recipient = await identityToRecipient(identity);
  const created = now.toISOString().replace(/\.\d+Z$/, 'Z');
  return { identity, recipient, file: `# created: ${created}\n# public key: ${recipient}\n${identity}\n` };
}
