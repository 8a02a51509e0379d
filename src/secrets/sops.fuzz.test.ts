/**
 * Property-based fuzzing of SOPS decryption with files written by the real sops tool (test/fixtures/sops): a
 * tampered, truncated or malformed file is refused with a SopsError whose message names no plaintext; it never
 * crashes with another error and never yields values that differ from what was encrypted.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { renderRepository } from '../render/render.js';
import { checkSecrets } from './resolve.js';
import { fuzzParams } from '../../test/fuzz.js';
import { Keyring, parseIdentities } from './age-keys.js';
import { decryptSops, formatOf, SopsError, type Decrypted, type SopsFormat } from './sops.js';
import { Comment, cloneTree, toBytes, walkBranch } from './sops-tree.js';

const fixtures = join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'sops');
const read = (f: string) => readFileSync(join(fixtures, f), 'utf8');
const keyring = new Keyring(parseIdentities(read('age.txt'), 'age.txt'), 'test');

/** Files written by sops 3.13.2 / Flux's vectors; ini is a format sops writes and Keelson does not read. */
const FILES = ['secret.age.yaml', 'year.env', 'types.age.json', 'types.age.yaml', 'types.age.ini'] as const;
const PLAINTEXTS = ['my-sops-age-secret', 'fuzz-json-secret', 'fuzz-yaml-secret', 'fuzz-ini-secret', 'fuzz-json-item', 'fuzz-yaml-item'];

/**
 * What a decryption gave: every non-comment leaf's bytes, in order, as the MAC covers them. Keys are not compared:
 * sops authenticates the path of encrypted values only (as their AAD), so renaming a key of a plain value goes
 * unnoticed by design, in sops as here.
 */
function leaves(d: Decrypted): string[] {
  const out: string[] = [];
  for (const b of d.branches.map((x) => cloneTree(x))) {
    walkBranch(b, [], [], (v) => {
      if (!(v instanceof Comment)) out.push(Buffer.from(toBytes(v)).toString('base64'));
      return v;
    });
  }
  return out;
}

const originals = new Map<string, string[]>();
async function original(file: string): Promise<string[]> {
  let o = originals.get(file);
  if (!o) {
    o = leaves(await decryptSops(read(file), { format: formatOf(file), keyring, name: file }));
    originals.set(file, o);
  }
  return o;
}

/**
 * Decrypts `text` as `format`: either a SopsError with a safe, non-empty message, or exactly the values of the
 * untampered `file` (formatting changes that sops would accept too, such as a dropped trailing newline).
 */
async function check(file: string, text: string, format: SopsFormat = formatOf(file)): Promise<void> {
  let d: Decrypted;
  try {
    d = await decryptSops(text, { format, keyring, name: 'fuzzed-file' });
  } catch (err) {
    expect(err, `${(err as Error)?.stack}`).toBeInstanceOf(SopsError);
    const msg = (err as SopsError).message;
    expect(msg).toMatch(/^fuzzed-file: \S/);
    for (const p of PLAINTEXTS) expect(msg).not.toContain(p);
    return;
  }
  expect(file.endsWith('.ini'), 'an ini file must never decrypt as YAML').toBe(false);
  expect(leaves(d)).toEqual(await original(file));
}

// ---- mutations ---------------------------------------------------------------------------------

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=';

/** Spans of every ENC[...] value of a text. */
function encSpans(text: string): [number, number][] {
  return [...text.matchAll(/ENC\[[^\]]*\]/g)].map((m) => [m.index!, m.index! + m[0].length]);
}

type Mutation = (text: string, file: string) => string;

/** Gives a mutation a readable name in fast-check's counterexamples. */
function named(name: string, fn: Mutation): Mutation {
  return Object.assign(fn, { [fc.toStringMethod]: () => name });
}

const flipInEnc = fc.tuple(fc.nat(), fc.nat(), fc.constantFrom(...B64.split(''), '!', ']', ',', ' ', 'é', '')).map(
  ([a, b, c]): Mutation =>
    named(`flipInEnc(${a}, ${b}, ${JSON.stringify(c)})`, (text) => {
      const spans = encSpans(text);
      const [s, e] = spans[a % spans.length];
      const i = s + 4 + (b % (e - s - 5)); // inside the brackets
      return text.slice(0, i) + (text[i] === c ? (c === 'A' ? 'B' : 'A') : c) + text.slice(i + 1);
    }),
);

/** The names of the metadata keys as each format writes them. */
const META_KEYS = ['mac', 'lastmodified', 'version', 'age', 'enc', 'recipient', 'encrypted_regex', 'unencrypted_suffix'];

const removeMetaKey = fc.tuple(fc.constantFrom(...META_KEYS), fc.nat()).map(
  ([key, n]): Mutation =>
    named(`removeMetaKey(${key}, ${n})`, (text, file) => {
      if (file.endsWith('.json')) {
        const obj = JSON.parse(text);
        if (key in obj.sops) delete obj.sops[key];
        else if (Array.isArray(obj.sops.age) && obj.sops.age[0]) delete obj.sops.age[0][key];
        return JSON.stringify(obj, null, '\t');
      }
      const lines = text.split('\n');
      const hits = lines.map((l, i) => [l, i] as const).filter(([l]) => new RegExp(`(^|[\\s_-])${key}(\\s*[:=]|__)`).test(l));
      if (!hits.length) return text;
      lines.splice(hits[n % hits.length][1], 1);
      return lines.join('\n');
    }),
);

/** The MAC of another file written with the same key (valid ENC, wrong data key or wrong digest). */
const wrongMac = fc.constantFrom(...FILES).map(
  (other): Mutation =>
    named(`wrongMac(${other})`, (text) => {
      const mac = /mac["\s]*[:=]\s*"?(ENC\[[^\]]*\])/.exec(read(other))?.[1];
      return mac ? text.replace(/(mac["\s]*[:=]\s*"?)ENC\[[^\]]*\]/, `$1${mac}`) : text;
    }),
);

const truncate = fc.nat().map((n): Mutation => named(`truncate(${n})`, (text) => text.slice(0, n % (text.length + 1))));

const insertJunk = fc.tuple(fc.nat(), fc.string({ unit: 'binary', minLength: 1, maxLength: 6 })).map(
  ([n, s]): Mutation =>
    named(`insertJunk(${n}, ${JSON.stringify(s)})`, (text) => {
      const i = n % (text.length + 1);
      return text.slice(0, i) + s + text.slice(i);
    }),
);

const lineEdit = fc.tuple(fc.nat(), fc.constantFrom('delete', 'duplicate', 'indent', 'dedent', 'swap')).map(
  ([n, op]): Mutation =>
    named(`lineEdit(${n}, ${op})`, (text) => {
      const lines = text.split('\n');
      const i = n % lines.length;
      if (op === 'delete') lines.splice(i, 1);
      else if (op === 'duplicate') lines.splice(i, 0, lines[i]);
      else if (op === 'indent') lines[i] = `  ${lines[i]}`;
      else if (op === 'dedent') lines[i] = lines[i].replace(/^\s{1,2}/, '');
      else if (i + 1 < lines.length) [lines[i], lines[i + 1]] = [lines[i + 1], lines[i]];
      return lines.join('\n');
    }),
);

/** A value of the file replaced by a random one (the rule, the stamp, a plain value, a type). */
const replaceValue = fc
  .tuple(
    fc.nat(),
    fc.oneof(
      fc.string({ maxLength: 10 }),
      fc.constantFrom('(', '[', '*', '\\', '(?<', 'a{99999999999}', '', 'null', '~', '[]', '{}', '2021-13-45T99:99:99Z', 'type:bytes', 'type:int', 'type:float', 'type:bool', 'type:time', 'type:comment'),
    ),
  )
  .map(
    ([n, v]): Mutation =>
      named(`replaceValue(${n}, ${JSON.stringify(v)})`, (text) => {
        const m = [...text.matchAll(/(?<=[:=]\s*"?)[^\s"\n,{}[\]]+/g)];
        if (!m.length) return text;
        const hit = m[n % m.length];
        return text.slice(0, hit.index!) + v + text.slice(hit.index! + hit[0].length);
      }),
  );

const retype = fc.tuple(fc.nat(), fc.constantFrom('str', 'int', 'float', 'bool', 'bytes', 'time', 'comment', 'x')).map(
  ([n, t]): Mutation =>
    named(`retype(${n}, ${t})`, (text) => {
      const m = [...text.matchAll(/type:(\w+)\]/g)];
      const hit = m[n % m.length];
      return text.slice(0, hit.index!) + `type:${t}]` + text.slice(hit.index! + hit[0].length);
    }),
);

/** A metadata value (the rule, the stamp, the version) replaced by a random one. */
const replaceMeta = fc
  .tuple(
    fc.constantFrom('encrypted_regex', 'unencrypted_suffix', 'lastmodified', 'version', 'mac'),
    fc.constantFrom('', 'encrypted_regex', 'unencrypted_regex', 'encrypted_comment_regex', 'encrypted_suffix'),
    fc.oneof(fc.string({ maxLength: 8 }), fc.string({ unit: fc.constantFrom(...'()[]{}*+?\\|^$a.'.split('')), maxLength: 6 })),
  )
  .map(
    ([key, rename, v]): Mutation =>
      named(`replaceMeta(${key}, ${JSON.stringify(rename)}, ${JSON.stringify(v)})`, (text) =>
        text.replace(new RegExp(`((?:^|[\\s_"]))${key}("?\\s*[:=]\\s*"?)[^"\\n]*`, 'm'), (_m, head: string, sep: string) => `${head}${rename || key}${sep}${v}`),
      ),
  );

const mutation = fc.oneof(replaceMeta, flipInEnc, removeMetaKey, wrongMac, truncate, insertJunk, lineEdit, replaceValue, retype);

describe('SOPS decryption fuzz', () => {
  it('the vectors decrypt untouched (and the ini one is refused: Keelson reads YAML, JSON and dotenv)', async () => {
    for (const f of FILES) await check(f, read(f));
    await expect(decryptSops(read('types.age.ini'), { format: formatOf('types.age.ini'), keyring, name: 'i' })).rejects.toBeInstanceOf(SopsError);
  });

  it('a file with one to three mutations is refused with a SopsError or decrypts to exactly the original values', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...FILES), fc.array(mutation, { minLength: 1, maxLength: 3 }), async (file, ms) => {
        let text = read(file);
        for (const m of ms) {
          try {
            text = m(text, file);
          } catch {
            // a mutation that does not apply to this text (e.g. JSON no longer parses): keep the text
          }
        }
        await check(file, text);
      }),
      fuzzParams(500),
    );
  });

  it('a file read in the wrong format is refused with a SopsError, never decrypted into other values', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...FILES), fc.constantFrom<SopsFormat>('yaml', 'json', 'dotenv'), async (file, format) => {
        await check(file, read(file), format);
      }),
      fuzzParams(30),
    );
  });

  it('arbitrary text, JSON and YAML with a random sops block are refused with a SopsError', async () => {
    const metaValue = fc.oneof(fc.string({ maxLength: 20 }), fc.integer(), fc.constant(null), fc.array(fc.string(), { maxLength: 2 }));
    const meta = fc.record(
      {
        age: fc.oneof(fc.array(fc.record({ recipient: fc.string(), enc: fc.string() }), { maxLength: 2 }), metaValue),
        lastmodified: metaValue,
        mac: metaValue,
        encrypted_regex: metaValue,
        key_groups: metaValue,
        version: metaValue,
      },
      { requiredKeys: [] },
    );
    const text = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 300 }),
      fc.json(),
      fc.tuple(fc.jsonValue(), meta).map(([v, sops]) => JSON.stringify({ data: v, sops })),
      fc.tuple(fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), fc.string({ maxLength: 8 })), meta).map(
        ([d, sops]) => `${Object.entries(d).map(([k, v]) => `${k.replaceAll(/[=\n]/g, '_')}=${v.replaceAll('\n', '')}`).join('\n')}\nsops_mac=${String(sops.mac)}\nsops_lastmodified=x\n`,
      ),
    );
    await fc.assert(
      fc.asyncProperty(text, fc.constantFrom<SopsFormat>('yaml', 'json', 'dotenv'), async (t, format) => {
        try {
          await decryptSops(t, { format, keyring, name: 'fuzzed-file' });
        } catch (err) {
          expect(err, `${(err as Error)?.stack}`).toBeInstanceOf(SopsError);
          expect((err as Error).message).toMatch(/^fuzzed-file: \S/);
          return;
        }
        throw new Error('a file without a fitting age recipient decrypted');
      }),
      fuzzParams(),
    );
  });
});

describe('keelson validate on tampered secret files', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'keelson-sops-fuzz-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));
  const KEYS: Record<string, string> = { 'secret.age.yaml': 'stringData', 'year.env': 'year', 'types.age.json': 'db', 'types.age.yaml': 'db' };
  let seq = 0;

  it('every issue is at file:line:col (1-based) with a message, and names no plaintext', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...Object.keys(KEYS)), fc.array(mutation, { minLength: 1, maxLength: 2 }), async (file, ms) => {
        let text = read(file);
        for (const m of ms) {
          try {
            text = m(text, file);
          } catch {
            // not applicable to this text
          }
        }
        const root = join(scratch, `r${seq++}`);
        mkdirSync(join(root, 'secrets'), { recursive: true });
        mkdirSync(join(root, 'bin'));
        writeFileSync(join(root, 'secrets', file), text);
        writeFileSync(
          join(root, 'app.yaml'),
          `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: web }
spec:
  version: "1"
  artifact: { path: bin }
  run: { command: [node] }
  secrets:
    env: [{ name: S, file: secrets/${file}, key: ${KEYS[file]} }]
    files: [{ file: secrets/${file}, path: all }]
---
apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata: { name: dev }
spec:
  target: { local: {} }
  apps: { web: {} }
`,
        );
        const rendered = await renderRepository({ root });
        expect(rendered.issues).toEqual([]);
        const issues = await checkSecrets(rendered.desired, root, keyring);
        for (const i of issues) {
          expect(i.file.length).toBeGreaterThan(0);
          expect(Number.isInteger(i.line) && i.line >= 1, JSON.stringify(i)).toBe(true);
          expect(Number.isInteger(i.col) && i.col >= 1, JSON.stringify(i)).toBe(true);
          expect(i.message).toMatch(/\S/);
          for (const p of PLAINTEXTS) expect(i.message).not.toContain(p);
        }
      }),
      fuzzParams(),
    );
  });
});

describe('SOPS dotenv metadata fuzz', () => {
  it('flattened sops_* keys of any shape added to a real file are refused or ignored quickly, never a crash or a hang', async () => {
    const token = fc.oneof(
      fc.constantFrom('age', 'enc', 'recipient', 'mac', 'lastmodified', 'version', 'key_groups', 'kms', 'pgp', '', '__proto__', 'constructor'),
      fc.string({ maxLength: 6 }).map((x) => x.replace(/[=\n]/g, '')),
    );
    const index = fc.oneof(fc.nat(5), fc.constantFrom(999, 1000, 4_000_000_000, 2 ** 32 - 2, 1e15, -1, 1.5), fc.string({ maxLength: 3 }).map((x) => x.replace(/[=\n]/g, '')));
    const flatKey = fc
      .array(fc.oneof(token.map((t) => `__map_${t}`), index.map((i) => `__list_${i}`)), { minLength: 1, maxLength: 4 })
      .chain((parts) => token.map((head) => `sops_${head}${parts.join('')}`));
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(flatKey, fc.string({ maxLength: 8 }).map((x) => x.replace(/\n/g, ''))), { minLength: 1, maxLength: 3 }), async (extra) => {
        const text = read('year.env') + extra.map(([k, v]) => `${k}=${v}\n`).join('');
        await check('year.env', text);
      }),
      fuzzParams(),
    );
  });
});

describe('SOPS YAML aliases fuzz', () => {
  it('anchors and aliases of any nesting added to a real file are refused with a SopsError or decrypted, quickly', async () => {
    // level i is a list of `width` aliases of level i-1: width^depth leaves when expanded
    const laughs = fc.tuple(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 12 }), fc.boolean()).map(([depth, width, cyclic]) => {
      const lines = ['l0: &l0 [lol]'];
      for (let i = 1; i <= depth; i++) lines.push(`l${i}: &l${i} [${Array.from({ length: width }, () => `*l${i - 1}`).join(', ')}]`);
      if (cyclic) lines.push('cyc: &cyc [*cyc]');
      return `${lines.join('\n')}\n`;
    });
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('secret.age.yaml', 'types.age.yaml'), laughs, async (file, extra) => {
        await check(file, extra + read(file));
      }),
      fuzzParams(100),
    );
  });
});

describe('SOPS decryption fuzz: regressions', () => {
  it('a "billion laughs" YAML file is refused at once, not expanded (9 levels of 9 aliases)', async () => {
    const lines = ['l0: &l0 [lol]'];
    for (let i = 1; i <= 9; i++) lines.push(`l${i}: &l${i} [${Array(9).fill(`*l${i - 1}`).join(', ')}]`);
    const err = await decryptSops(`${lines.join('\n')}\n${read('secret.age.yaml')}`, { format: 'yaml', keyring, name: 'laughs.yaml' }).catch((e) => e);
    expect(err).toBeInstanceOf(SopsError);
    expect(err.message).toBe('laughs.yaml: the YAML resolves more than 1000 aliases; write the values out instead');
  });

  it('a huge list index in a flattened dotenv metadata key is refused at once (it made a sparse list walked for minutes)', async () => {
    const err = await decryptSops(`${read('year.env')}sops_age__list_4000000000__map_enc=x\n`, { format: 'dotenv', keyring, name: 'year.env' }).catch((e) => e);
    expect(err).toBeInstanceOf(SopsError);
    expect(err.message).toBe('year.env: the sops metadata key sops_age__list_4000000000__map_enc has a list index that is not a number below 1000');
  });

  it('an invalid encrypted_regex in the metadata is a SopsError, not a SyntaxError', async () => {
    await check('secret.age.yaml', read('secret.age.yaml').replace('^(data|stringData)$', '('));
    // seed -1027886124: replaceMeta(unencrypted_suffix, "encrypted_regex", "(") on types.age.json
    const json = read('types.age.json').replace('"unencrypted_suffix": "_unencrypted"', '"encrypted_regex": "("');
    const err = await decryptSops(json, { format: 'json', keyring, name: 'types.age.json' }).catch((e) => e);
    expect(err).toBeInstanceOf(SopsError);
    expect(err.message).toBe('types.age.json: the sops metadata encrypted_regex is not a valid regular expression; the file was modified or is corrupt');
  });
});
