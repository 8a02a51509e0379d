import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Keyring, generateKey, parseIdentities } from './age-keys.js';
import { decryptSops, emitDecrypted, encryptSops, normalizeTimestamp, parsePlain, SopsError } from './sops.js';
import { positionOf } from './sops-formats.js';
import { formatFloat, toPlain } from './sops-tree.js';

const fixtures = join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'sops');
const read = (f: string) => readFileSync(join(fixtures, f), 'utf8');
const vectorKeyring = () => new Keyring(parseIdentities(read('age.txt'), 'age.txt'), 'test');

describe('sops vectors written by the real sops tool', () => {
  it('decrypts the Flux YAML vector (encrypted_regex, MAC over plain and encrypted values)', async () => {
    const d = await decryptSops(read('secret.age.yaml'), { format: 'yaml', keyring: vectorKeyring(), name: 'secret.age.yaml' });
    expect(toPlain(d.branches[0])).toEqual({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'sops-age' }, stringData: { secret: 'my-sops-age-secret' } });
    expect(d.metadata.rule).toEqual({ kind: 'encrypted_regex', value: '^(data|stringData)$' });
  });

  it('decrypts the Flux dotenv vector (metadata flattened into sops_* keys)', async () => {
    const d = await decryptSops(read('year.env'), { format: 'dotenv', keyring: vectorKeyring(), name: 'year.env' });
    expect(toPlain(d.branches[0])).toEqual({ year: '2017' });
    expect(emitDecrypted(d)).toBe('year=2017\n');
  });

  it.each([
    ['a value', (t: string) => t.replace('data:RwzrBF8wy16SpfbQoeADeKyz', 'data:RwzrBF8wy16SpfbQoeADeKyA'), 'cannot be decrypted'],
    ['a plain value (not in the MAC as it was)', (t: string) => t.replace('name: sops-age', 'name: sops-agf'), 'MAC mismatch'],
    ['the lastmodified stamp', (t: string) => t.replace('2021-04-06T09:07:05Z', '2021-04-06T09:07:06Z'), 'MAC mismatch'],
    ['the MAC', (t: string) => t.replace('mac: ENC[AES256_GCM,data:oaM8', 'mac: ENC[AES256_GCM,data:oaM9'), 'MAC mismatch'],
    ['a moved value (AAD is the path)', (t: string) => t.replace('stringData:\n    secret:', 'stringData:\n    other:'), 'cannot be decrypted'],
  ])('rejects a file with tampered %s, naming the file and no plaintext', async (_what, tamper, message) => {
    const err = await decryptSops(tamper(read('secret.age.yaml')), { format: 'yaml', keyring: vectorKeyring(), name: 'secret.age.yaml' }).catch((e) => e);
    expect(err).toBeInstanceOf(SopsError);
    expect(err.message).toContain('secret.age.yaml');
    expect(err.message).toContain(message);
    expect(err.message).not.toContain('my-sops-age-secret');
  });

  it('says which key is missing when no identity fits', async () => {
    const other = await generateKey();
    const err = await decryptSops(read('secret.age.yaml'), { format: 'yaml', keyring: new Keyring([other.identity], 'KEELSON_AGE_KEY'), name: 'x.yaml' }).catch((e) => e);
    expect(err.message).toMatch(/none of the 1 age identities from KEELSON_AGE_KEY fits .*age1l44xcng8dqj32nlv6d930qvvrny05hglzcv9qpc7kxjc6902ma4qufys29/);
    const none = await decryptSops(read('secret.age.yaml'), { format: 'yaml', keyring: new Keyring([], 'none'), name: 'x.yaml' }).catch((e) => e);
    expect(none.message).toContain('set KEELSON_AGE_KEY or KEELSON_AGE_KEY_FILE');
  });
});

describe('where a SOPS file fails (for `file:line:col` in keelson validate)', () => {
  const where = async (text: string, format: 'yaml' | 'json' | 'dotenv') => {
    const err = await decryptSops(text, { format, keyring: vectorKeyring(), name: 'f' }).catch((e) => e);
    expect(err).toBeInstanceOf(SopsError);
    const w = (err as SopsError).where;
    return w.pos ?? (w.path && positionOf(text, format, w.path));
  };

  it('points at a tampered value and at the MAC, in YAML and dotenv', async () => {
    const yaml = read('secret.age.yaml');
    expect(await where(yaml.replace('data:RwzrBF8wy16SpfbQoeADeKyz', 'data:RwzrBF8wy16SpfbQoeADeKyA'), 'yaml')).toEqual({ line: 6, col: 13 });
    expect(await where(yaml.replace('2021-04-06T09:07:05Z', '2021-04-06T09:07:06Z'), 'yaml')).toEqual({ line: 23, col: 10 });
    const env = read('year.env');
    expect(await where(env.replace('data:EfNnlA==', 'data:FfNnlA=='), 'dotenv')).toEqual({ line: 1, col: 6 });
    expect(await where(env.replace('sops_lastmodified=2021-10-14T15:35:45Z', 'sops_lastmodified=2021-10-14T15:35:46Z'), 'dotenv')).toEqual({ line: 5, col: 10 });
  });

  it('points at a parse error in YAML, JSON and dotenv without echoing the line', async () => {
    expect(await where('a: 1\nb: [oops\n', 'yaml')).toMatchObject({ line: expect.any(Number), col: expect.any(Number) });
    expect(await where('{\n  "a": 1,\n  "b" 2\n}\n', 'json')).toEqual({ line: 3, col: 7 });
    const err = await decryptSops('a=1\nhunter2\n', { format: 'dotenv', keyring: vectorKeyring(), name: 'f.env' }).catch((e) => e);
    expect(err.where.pos).toEqual({ line: 2, col: 1 });
    expect(err.message).not.toContain('hunter2');
  });
});

describe('encrypt → decrypt round trips', () => {
  const yaml = `# database credentials
db:
    user: app
    password: s3cr3t # rotate monthly
    port: 5432
    ratio: 1.5
    whole: 2.0
    enabled: true
    empty: ""
    nothing: null
    hosts:
        - a.example
        - b.example
plain_unencrypted: visible
`;

  it.each([
    ['yaml', yaml],
    ['json', '{"b": {"2": "two", "1": 1, "f": 0.25, "t": false, "list": ["x", 3]}, "a": "first"}'],
    ['dotenv', '# comment\nDB_PASSWORD=pa=ss\nMULTI=line1\\nline2\nEMPTY=\n'],
  ] as const)('%s: keeps order, types and comments, and verifies', async (format, text) => {
    const key = await generateKey();
    const enc = await encryptSops(parsePlain(text, format, 'f'), { format, recipients: [key.recipient] });
    expect(enc).not.toContain('s3cr3t');
    expect(enc).not.toContain('pa=ss');
    const d = await decryptSops(enc, { format, keyring: new Keyring([key.identity], 'test'), name: 'f' });
    expect(toPlain(d.branches[0])).toEqual(toPlain(parsePlain(text, format, 'f')[0]));
  });

  it('yaml: emits decrypted text with comments, and leaves _unencrypted values and empty strings in clear', async () => {
    const key = await generateKey();
    const enc = await encryptSops(parsePlain(yaml, 'yaml', 'f'), { format: 'yaml', recipients: [key.recipient] });
    expect(enc).toContain('plain_unencrypted: visible');
    expect(enc).toContain('empty: ""');
    expect(enc).toMatch(/#ENC\[AES256_GCM,.*type:comment\]/);
    expect(enc).toMatch(/port: ENC\[AES256_GCM,.*type:int\]/);
    expect(enc).toMatch(/ratio: ENC\[AES256_GCM,.*type:float\]/);
    expect(enc).toMatch(/enabled: ENC\[AES256_GCM,.*type:bool\]/);
    const d = await decryptSops(enc, { format: 'yaml', keyring: new Keyring([key.identity], 'test'), name: 'f' });
    const out = emitDecrypted(d);
    expect(out).toContain('# database credentials');
    expect(out).toContain('password: s3cr3t # rotate monthly');
    expect(out).toContain('whole: 2.0');
  });

  it('encrypted_regex encrypts only matching subtrees', async () => {
    const key = await generateKey();
    const text = 'apiVersion: v1\nkind: Secret\nstringData:\n  token: abc\n';
    const enc = await encryptSops(parsePlain(text, 'yaml', 'f'), { format: 'yaml', recipients: [key.recipient], rule: { kind: 'encrypted_regex', value: '^(data|stringData)$' } });
    expect(enc).toContain('kind: Secret');
    expect(enc).toContain('encrypted_regex: ^(data|stringData)$');
    expect(enc).not.toContain('abc');
  });

  it('re-encrypting an edit keeps the ciphertext of unchanged values and the wrapped data key', async () => {
    const key = await generateKey();
    const keyring = new Keyring([key.identity], 'test');
    const first = await encryptSops(parsePlain('a: one\nb: two\n', 'yaml', 'f'), { format: 'yaml', recipients: [key.recipient] });
    const d = await decryptSops(first, { format: 'yaml', keyring, name: 'f' });
    const second = await encryptSops(parsePlain('a: one\nb: changed\n', 'yaml', 'f'), { format: 'yaml', recipients: [key.recipient], previous: d });
    const line = (t: string, k: string) => t.split('\n').find((l) => l.startsWith(`${k}:`));
    expect(line(second, 'a')).toBe(line(first, 'a'));
    expect(line(second, 'b')).not.toBe(line(first, 'b'));
    expect(second.slice(second.indexOf('-----BEGIN'), second.indexOf('-----END'))).toBe(first.slice(first.indexOf('-----BEGIN'), first.indexOf('-----END')));
    expect(toPlain((await decryptSops(second, { format: 'yaml', keyring, name: 'f' })).branches[0])).toEqual({ a: 'one', b: 'changed' });
  });

  it('refuses to encrypt an already encrypted file', async () => {
    const key = await generateKey();
    await expect(encryptSops(parsePlain(read('secret.age.yaml'), 'yaml', 'f'), { format: 'yaml', recipients: [key.recipient] })).rejects.toThrow(/already has sops metadata/);
  });
});

describe('helpers that must match Go', () => {
  it('formats floats like strconv.FormatFloat(f, "f", -1, 64)', () => {
    expect(formatFloat(1)).toBe('1');
    expect(formatFloat(1.5)).toBe('1.5');
    expect(formatFloat(1e21)).toBe('1000000000000000000000');
    expect(formatFloat(1.25e-7)).toBe('0.000000125');
    expect(formatFloat(-3.5e22)).toBe('-35000000000000000000000');
  });

  it('normalizes lastmodified like time.Format(RFC3339)', () => {
    expect(normalizeTimestamp('2021-04-06T09:07:05.123Z')).toBe('2021-04-06T09:07:05Z');
    expect(normalizeTimestamp('2021-04-06T09:07:05+02:00')).toBe('2021-04-06T09:07:05+02:00');
    expect(normalizeTimestamp('2021-04-06T09:07:05+00:00')).toBe('2021-04-06T09:07:05Z');
  });

  it('rejects a malformed identity without echoing it', () => {
    expect(() => parseIdentities('AGE-SECRET-KEY-1lowercase-oops', 'KEELSON_AGE_KEY')).toThrow(/KEELSON_AGE_KEY line 1 is not an age identity/);
    try {
      parseIdentities('AGE-SECRET-KEY-1lowercase-oops', 'KEELSON_AGE_KEY');
    } catch (err) {
      expect((err as Error).message).not.toContain('oops');
    }
  });
});
