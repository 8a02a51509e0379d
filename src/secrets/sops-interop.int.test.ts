import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generateKey, Keyring } from './age-keys.js';
import { decryptSops, emitDecrypted, encryptSops, parsePlain } from './sops.js';
import { toPlain } from './sops-tree.js';
import type { SopsFormat } from './sops-formats.js';

/** The real sops binary: $KEELSON_SOPS_BIN, else `sops` on the PATH. */
function sopsBin(): string | undefined {
  for (const bin of [process.env.KEELSON_SOPS_BIN, 'sops'].filter(Boolean) as string[]) {
    try {
      execFileSync(bin, ['--version'], { stdio: 'ignore' });
      return bin;
    } catch {
      /* next */
    }
  }
  return undefined;
}

const sops = sopsBin();
const samples: [SopsFormat, string, string][] = [
  ['yaml', 'a.yaml', '# top\ndb:\n  password: hunter2 # inline\n  port: 5432\n  ratio: 1.5\n  whole: 2.0\n  on: true\n  when: 2021-04-06T09:07:05Z\n  list: [a, 2, null]\nplain_unencrypted: x\n'],
  ['json', 'a.json', '{"b": {"2": "two", "1": 1, "f": 0.25, "g": 1.0}, "a": [1, "x", null, true]}\n'],
  ['dotenv', 'a.env', '# c\nTOKEN=abc\nMULTI=l1\\nl2\n'],
];

// Not in Debian; build it with `go build ./cmd/sops` from getsops/sops and set KEELSON_SOPS_BIN to run these.
describe.skipIf(!sops)('interoperability with the real sops binary', () => {
  const dir = mkdtempSync(join(tmpdir(), 'keelson-sops-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const setup = async () => {
    const key = await generateKey();
    const keyFile = join(dir, `key-${key.recipient.slice(4, 12)}.txt`);
    writeFileSync(keyFile, key.file, { mode: 0o600 });
    return { key, keyFile, keyring: new Keyring([key.identity], 'test'), env: { ...process.env, SOPS_AGE_KEY_FILE: keyFile } };
  };

  it.each(samples)('sops decrypts what Keelson encrypts (%s)', async (format, name, text) => {
    const { key, keyring, env } = await setup();
    const file = join(dir, `k-${name}`);
    writeFileSync(file, await encryptSops(parsePlain(text, format, name), { format, recipients: [key.recipient] }));
    const out = execFileSync(sops!, ['-d', file], { env, encoding: 'utf8' });
    expect(toPlain(parsePlain(out, format, name)[0])).toEqual(toPlain((await decryptSops(await encryptSops(parsePlain(text, format, name), { format, recipients: [key.recipient] }), { format, keyring, name })).branches[0]));
  });

  it.each(samples)('Keelson decrypts what sops encrypts (%s)', async (format, name, text) => {
    const { key, keyring, env } = await setup();
    const plain = join(dir, `s-${name}`);
    writeFileSync(plain, text);
    const enc = execFileSync(sops!, ['-e', '--age', key.recipient, plain], { env, encoding: 'utf8' });
    const encFile = join(dir, `enc-${name}`);
    writeFileSync(encFile, enc);
    const sopsPlain = execFileSync(sops!, ['-d', encFile], { env, encoding: 'utf8' });
    const d = await decryptSops(enc, { format, keyring, name });
    expect(toPlain(d.branches[0])).toEqual(toPlain(parsePlain(sopsPlain, format, name)[0]));
    expect(emitDecrypted(d)).toContain(format === 'dotenv' ? 'TOKEN=abc' : format === 'json' ? '"two"' : 'hunter2');
  });

  it('sops reads a file after a Keelson edit, and Keelson after `sops set`', async () => {
    const { key, keyring, env } = await setup();
    const file = join(dir, 'edit.yaml');
    writeFileSync(file, await encryptSops(parsePlain('a: one\nb: two\n', 'yaml', 'f'), { format: 'yaml', recipients: [key.recipient], rule: { kind: 'encrypted_regex', value: '^b$' } }));
    const before = await decryptSops(execFileSync('cat', [file], { encoding: 'utf8' }), { format: 'yaml', keyring, name: 'f' });
    writeFileSync(file, await encryptSops(parsePlain('a: one\nb: three\n', 'yaml', 'f'), { format: 'yaml', recipients: [key.recipient], previous: before }));
    expect(execFileSync(sops!, ['-d', file], { env, encoding: 'utf8' })).toBe('a: one\nb: three\n');
    execFileSync(sops!, ['set', file, '["b"]', '"four"'], { env });
    const after = await decryptSops(execFileSync('cat', [file], { encoding: 'utf8' }), { format: 'yaml', keyring, name: 'f' });
    expect(toPlain(after.branches[0])).toEqual({ a: 'one', b: 'four' });
  });
});
