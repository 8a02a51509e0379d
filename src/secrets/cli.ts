/**
 * `keelson secret keygen | encrypt | decrypt | edit`: SOPS files with age keys, readable by sops itself.
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { ExitError } from '../core/errors.js';
import { parse } from '../cli/args.js';
import { generateKey, KeyError, loadKeyring } from './age-keys.js';
import { decryptSops, emitDecrypted, encryptSops, parsePlain, SopsError, type SopsRule } from './sops.js';
import { formatOf, type SopsFormat } from './sops-formats.js';

export const secretUsage = `keelson secret — SOPS + age encrypted files (sops reads them too)

  keelson secret keygen [-o FILE]                  new age identity (stdout, or FILE with mode 0600)
  keelson secret encrypt --age RECIPIENT[,RECIPIENT] [--encrypted-regex RE | --unencrypted-suffix S |
                 --encrypted-suffix S | --unencrypted-regex RE] [--in-place] [--input-type yaml|json|dotenv] FILE
  keelson secret decrypt [--in-place] [--input-type T] FILE
  keelson secret edit FILE                         decrypt into a private temp file, run $EDITOR, re-encrypt

Identities come from KEELSON_AGE_KEY or KEELSON_AGE_KEY_FILE (else SOPS_AGE_KEY / SOPS_AGE_KEY_FILE).`;

export async function secret(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'keygen':
      return keygen(rest);
    case 'encrypt':
      return encrypt(rest);
    case 'decrypt':
      return decrypt(rest);
    case 'edit':
      return edit(rest);
    case undefined:
    case 'help':
    case '--help':
      console.log(secretUsage);
      return;
    default:
      throw new ExitError(2, `unknown subcommand "secret ${sub}"\n\n${secretUsage}`);
  }
}

function oneFile(positionals: string[], cmd: string): string {
  if (positionals.length !== 1) throw new ExitError(2, `keelson secret ${cmd} needs exactly one FILE\n\n${secretUsage}`);
  return positionals[0];
}

function readInput(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new ExitError(1, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

function formatFor(file: string, given: string | undefined): SopsFormat {
  if (given === undefined) return formatOf(file);
  if (given === 'yaml' || given === 'json' || given === 'dotenv') return given;
  throw new ExitError(2, `--input-type must be yaml, json or dotenv, not "${given}"`);
}

/** Replaces a file atomically, keeping its mode. */
function writeInPlace(file: string, text: string): void {
  const mode = existsSync(file) ? statSync(file).mode & 0o777 : 0o600;
  const tmp = join(dirname(file), `.${basename(file)}.keelson-${process.pid}`);
  writeFileSync(tmp, text, { mode });
  renameSync(tmp, file);
}

function fail(err: unknown): never {
  if (err instanceof SopsError || err instanceof KeyError) throw new ExitError(1, err.message);
  throw err;
}

async function keygen(argv: string[]): Promise<void> {
  const { values } = parse(argv, { output: { type: 'string', short: 'o' } });
  const key = await generateKey();
  if (values.output) {
    if (existsSync(values.output)) throw new ExitError(1, `${values.output} exists; not overwriting a key file`);
    writeFileSync(values.output, key.file, { mode: 0o600 });
  } else {
    process.stdout.write(key.file);
  }
  console.error(`Public key: ${key.recipient}`);
}

async function encrypt(argv: string[]): Promise<void> {
  const { values, positionals } = parse(
    argv,
    {
      age: { type: 'string' },
      'in-place': { type: 'boolean', short: 'i' },
      'input-type': { type: 'string' },
      'encrypted-regex': { type: 'string' },
      'unencrypted-regex': { type: 'string' },
      'encrypted-suffix': { type: 'string' },
      'unencrypted-suffix': { type: 'string' },
      'mac-only-encrypted': { type: 'boolean' },
    },
    true,
  );
  const file = oneFile(positionals, 'encrypt');
  const recipients = (values.age ?? process.env.KEELSON_AGE_RECIPIENTS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (!recipients.length) throw new ExitError(2, 'keelson secret encrypt needs --age age1…[,age1…] (the public keys; `keelson secret keygen` prints one)');
  const rules = (['encrypted-regex', 'unencrypted-regex', 'encrypted-suffix', 'unencrypted-suffix'] as const).filter((k) => values[k] !== undefined);
  if (rules.length > 1) throw new ExitError(2, `give at most one of --${rules.join(', --')}`);
  const rule: SopsRule | undefined = rules.length ? { kind: rules[0].replace('-', '_') as SopsRule['kind'], value: values[rules[0]]! } : undefined;
  if (rule && /regex/.test(rule.kind)) {
    try {
      new RegExp(rule.value);
    } catch {
      throw new ExitError(2, `--${rules[0]} is not a valid regular expression`);
    }
  }
  const format = formatFor(file, values['input-type']);
  const text = await Promise.resolve()
    .then(() => encryptSops(parsePlain(readInput(file), format, file), { format, recipients, rule, macOnlyEncrypted: values['mac-only-encrypted'], name: file }))
    .catch(fail);
  if (values['in-place']) writeInPlace(file, text);
  else process.stdout.write(text);
}

async function decrypt(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, { 'in-place': { type: 'boolean', short: 'i' }, 'input-type': { type: 'string' } }, true);
  const file = oneFile(positionals, 'decrypt');
  const format = formatFor(file, values['input-type']);
  const keyring = (() => {
    try {
      return loadKeyring({ sopsFallback: true });
    } catch (err) {
      return fail(err);
    }
  })();
  const d = await decryptSops(readInput(file), { format, keyring, name: file }).catch(fail);
  const out = emitDecrypted(d);
  if (values['in-place']) writeInPlace(file, out);
  else process.stdout.write(out);
}

async function edit(argv: string[]): Promise<void> {
  const { positionals } = parse(argv, { 'input-type': { type: 'string' } }, true);
  const file = oneFile(positionals, 'edit');
  const format = formatOf(file);
  let keyring;
  try {
    keyring = loadKeyring({ sopsFallback: true });
  } catch (err) {
    fail(err);
  }
  const before = await decryptSops(readInput(file), { format, keyring, name: file }).catch(fail);
  const plain = emitDecrypted(before);
  // A private dir (0700) and file (0600), removed whatever happens.
  const dir = mkdtempSync(join(tmpdir(), 'keelson-secret-'));
  chmodSync(dir, 0o700);
  const tmp = join(dir, basename(file));
  try {
    writeFileSync(tmp, plain, { mode: 0o600 });
    const editor = (process.env.VISUAL || process.env.EDITOR || 'vi').trim().split(/\s+/);
    const code = await new Promise<number>((resolve, reject) => {
      const child = spawn(editor[0], [...editor.slice(1), tmp], { stdio: 'inherit' });
      child.once('error', (err) => reject(new ExitError(1, `cannot start the editor ${editor[0]}: ${err.message}; set $EDITOR`)));
      child.once('exit', (c) => resolve(c ?? 1));
    });
    if (code !== 0) throw new ExitError(1, `the editor exited with code ${code}; ${file} is unchanged`);
    const edited = readFileSync(tmp, 'utf8');
    if (edited === plain) {
      console.error(`${file}: no changes`);
      return;
    }
    const recipients = before.metadata.age.map((a) => a.recipient);
    const text = await Promise.resolve()
      .then(() => encryptSops(parsePlain(edited, format, file), { format, recipients, previous: before, name: file }))
      .catch(fail);
    writeInPlace(file, text);
    console.error(`${file}: re-encrypted for ${recipients.length} recipient(s)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
