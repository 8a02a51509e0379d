/**
 * SOPS value encryption (`aes/cipher.go`): AES-256-GCM with a 32-byte IV, the path as additional data, written as
 * `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`. The IV stash makes re-encryption of an unchanged (value, path) pair
 * reuse its IV, so unchanged values keep their ciphertext and git diffs stay small.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { Comment, SopsTime, toBytes, type Scalar } from './sops-tree.js';

const ENC = /^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]/;
const NONCE_SIZE = 32;

export type SopsType = 'str' | 'int' | 'float' | 'bool' | 'bytes' | 'time' | 'comment';

export function isEncrypted(v: unknown): v is string {
  return typeof v === 'string' && ENC.test(v);
}

function typeOf(v: Scalar | Comment): SopsType {
  if (typeof v === 'string') return 'str';
  if (typeof v === 'bigint') return 'int';
  if (typeof v === 'number') return 'float';
  if (typeof v === 'boolean') return 'bool';
  if (v instanceof Uint8Array) return 'bytes';
  if (v instanceof SopsTime) return 'time';
  if (v instanceof Comment) return 'comment';
  throw new Error('a null value cannot be encrypted');
}

function isEmpty(v: Scalar | Comment): boolean {
  if (typeof v === 'string') return v === '';
  if (v instanceof Uint8Array) return v.length === 0;
  if (v instanceof Comment) return v.value === '';
  return false;
}

/** Raised for a value that cannot be decrypted: the message never contains the value or its plaintext. */
export class SopsValueError extends Error {}

export class Cipher {
  /** (type, plaintext, aad) → IV of a value decrypted earlier. */
  private readonly stash = new Map<string, Buffer>();

  constructor(private readonly key: Uint8Array) {
    if (key.length !== 32) throw new Error(`a sops data key has 32 bytes, got ${key.length}`);
  }

  private stashKey(type: SopsType, plain: Uint8Array, aad: string): string {
    return `${type}\0${Buffer.from(plain).toString('base64')}\0${aad}`;
  }

  encrypt(value: Scalar | Comment, aad: string): string {
    if (isEmpty(value)) return '';
    const type = typeOf(value);
    const plain = toBytes(value);
    const iv = this.stash.get(this.stashKey(type, plain, aad)) ?? randomBytes(NONCE_SIZE);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    c.setAAD(Buffer.from(aad, 'utf8'));
    const data = Buffer.concat([c.update(plain), c.final()]);
    const tag = c.getAuthTag();
    return `ENC[AES256_GCM,data:${data.toString('base64')},iv:${iv.toString('base64')},tag:${tag.toString('base64')},type:${type}]`;
  }

  decrypt(text: string, aad: string): Scalar | Comment {
    if (text === '') return '';
    const m = ENC.exec(text);
    if (!m) throw new SopsValueError('value is not in the sops ENC[AES256_GCM,...] format');
    const [, data, ivText, tagText, type] = m;
    const iv = Buffer.from(ivText, 'base64');
    const tag = Buffer.from(tagText, 'base64');
    let plain: Buffer;
    try {
      const d = createDecipheriv('aes-256-gcm', this.key, iv, { authTagLength: 16 });
      d.setAAD(Buffer.from(aad, 'utf8'));
      d.setAuthTag(tag);
      plain = Buffer.concat([d.update(Buffer.from(data, 'base64')), d.final()]);
    } catch {
      throw new SopsValueError('authentication failed (wrong key, or the value, its path or its tag was changed)');
    }
    const value = fromBytes(plain, type);
    this.stash.set(this.stashKey(typeOf(value), toBytes(value), aad), iv);
    return value;
  }
}

function fromBytes(plain: Buffer, type: string): Scalar | Comment {
  const text = plain.toString('utf8');
  switch (type) {
    case 'str':
      return text;
    case 'int':
      if (!/^[+-]?\d+$/.test(text)) throw new SopsValueError('an int value does not hold an integer');
      return BigInt(text);
    case 'float': {
      const f = Number(text);
      if (Number.isNaN(f) && text !== 'NaN') throw new SopsValueError('a float value does not hold a number');
      return f;
    }
    case 'bool':
      // Go strconv.ParseBool
      if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(text)) return true;
      if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(text)) return false;
      throw new SopsValueError('a bool value does not hold a boolean');
    case 'bytes':
      return new Uint8Array(plain);
    case 'time':
      return new SopsTime(text);
    case 'comment':
      return new Comment(text);
    default:
      throw new SopsValueError(`unknown value type "${type}"`);
  }
}
