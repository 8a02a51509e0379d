import { execFileSync } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, symlink, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar';
import { afterEach, describe, expect, it } from 'vitest';
import { TerminalError } from '../../core/errors.js';
import { redactUrl, unpackTarGz } from './artifact.js';

const cleanups: string[] = [];
afterEach(async () => {
  for (const d of cleanups.splice(0)) await rm(d, { recursive: true, force: true });
});

async function testdir(): Promise<string> {
  const d = await mkdtemp(path.join(tmpdir(), 'keelson-artifact-'));
  cleanups.push(d);
  return d;
}

interface RawEntry {
  path: string;
  type?: 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'FIFO' | 'CharacterDevice';
  body?: string;
  linkpath?: string;
  mode?: number;
}

/** A .tar.gz written header by header, so entries can be as hostile as an attacker likes. */
async function rawTarGz(file: string, entries: RawEntry[]): Promise<void> {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const body = Buffer.from(e.body ?? '');
    const type = e.type ?? 'File';
    const h = new tar.Header({
      path: e.path,
      type,
      mode: e.mode ?? (type === 'Directory' ? 0o755 : 0o644),
      size: type === 'File' ? body.length : 0,
      linkpath: e.linkpath,
      mtime: new Date(0),
      uid: 0,
      gid: 0,
    });
    const block = Buffer.alloc(512);
    h.encode(block, 0);
    blocks.push(block);
    if (type === 'File' && body.length) {
      blocks.push(body, Buffer.alloc((512 - (body.length % 512)) % 512));
    }
  }
  blocks.push(Buffer.alloc(1024));
  await writeFile(file, gzipSync(Buffer.concat(blocks)));
}

async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    out.push(path.relative(dir, path.join(e.parentPath, e.name)));
  }
  return out.sort();
}

describe('unpackTarGz', () => {
  it('strips a single top-level directory and keeps exec bits and inner symlinks', async () => {
    const root = await testdir();
    const src = path.join(root, 'src', 'myapp-1.2.0');
    await mkdir(path.join(src, 'bin'), { recursive: true });
    await writeFile(path.join(src, 'bin', 'start'), '#!/bin/sh\necho hi\n');
    await chmod(path.join(src, 'bin', 'start'), 0o755);
    await writeFile(path.join(src, 'README'), 'hello');
    await symlink('bin/start', path.join(src, 'run'));
    const file = path.join(root, 'a.tar.gz');
    await tar.c({ gzip: true, file, cwd: path.join(root, 'src') }, ['myapp-1.2.0']);

    const dest = path.join(root, 'out');
    await unpackTarGz(file, dest);
    expect(await tree(dest)).toEqual(['README', 'bin', 'bin/start', 'run']);
    expect((await lstat(path.join(dest, 'bin', 'start'))).mode & 0o111).not.toBe(0);
    expect(await readlink(path.join(dest, 'run'))).toBe('bin/start');
    expect(await readFile(path.join(dest, 'README'), 'utf8')).toBe('hello');
  });

  it('keeps the layout when there are several top-level entries, including ./-prefixed archives', async () => {
    const root = await testdir();
    const src = path.join(root, 'src');
    await mkdir(path.join(src, 'lib'), { recursive: true });
    await writeFile(path.join(src, 'lib', 'a.js'), 'a');
    await writeFile(path.join(src, 'main.js'), 'm');
    const file = path.join(root, 'a.tar.gz');
    // The system tar, as users build artifacts: entries are ./, ./lib/, ./lib/a.js, ./main.js
    execFileSync('tar', ['-czf', file, '-C', src, '.']);
    const dest = path.join(root, 'out');
    await unpackTarGz(file, dest);
    expect(await tree(dest)).toEqual(['lib', 'lib/a.js', 'main.js']);
  });

  it('strips a ./-prefixed single top-level directory', async () => {
    const root = await testdir();
    const file = path.join(root, 'a.tar.gz');
    await rawTarGz(file, [
      { path: './pkg/', type: 'Directory' },
      { path: './pkg/index.js', body: 'x' },
      { path: './pkg/data.bin', type: 'Link', linkpath: './pkg/index.js' },
    ]);
    const dest = path.join(root, 'out');
    await unpackTarGz(file, dest);
    expect(await tree(dest)).toEqual(['data.bin', 'index.js']);
    expect(await readFile(path.join(dest, 'data.bin'), 'utf8')).toBe('x');
  });

  it('does not strip a lone top-level file', async () => {
    const root = await testdir();
    const file = path.join(root, 'a.tar.gz');
    await rawTarGz(file, [{ path: 'server', body: 'bin', mode: 0o755 }]);
    const dest = path.join(root, 'out');
    await unpackTarGz(file, dest);
    expect(await tree(dest)).toEqual(['server']);
  });

  it('clears setuid bits', async () => {
    const root = await testdir();
    const file = path.join(root, 'a.tar.gz');
    await rawTarGz(file, [{ path: 'tool', body: 'x', mode: 0o4755 }]);
    const dest = path.join(root, 'out');
    await unpackTarGz(file, dest);
    expect((await lstat(path.join(dest, 'tool'))).mode & 0o7000).toBe(0);
  });

  const hostile: [string, RawEntry[], RegExp][] = [
    ['a ../ escape', [{ path: 'ok.txt', body: 'ok' }, { path: '../evil', body: 'pwned' }], /"\.\.\/evil".*"\.\."/],
    ['a nested ../ escape', [{ path: 'a/../../evil', body: 'pwned' }], /"a\/\.\.\/\.\.\/evil"/],
    ['an absolute path', [{ path: '/tmp/keelson-evil-abs', body: 'pwned' }], /"\/tmp\/keelson-evil-abs" is an absolute path/],
    ['a symlink to /etc', [{ path: 'etc', type: 'SymbolicLink', linkpath: '/etc' }], /"etc" is a symlink to "\/etc"/],
    ['a symlink climbing out', [{ path: 'up', type: 'SymbolicLink', linkpath: '../..' }], /"up" is a symlink/],
    [
      'a file written through a symlink',
      [
        { path: 'd', type: 'SymbolicLink', linkpath: '.' },
        { path: 'd/evil', body: 'x' },
      ],
      /"d\/evil" is below symlink d/,
    ],
    [
      'a symlink resolved through another symlink',
      [
        { path: 'sub/', type: 'Directory' },
        { path: 'sub/s', type: 'SymbolicLink', linkpath: '.' },
        { path: 'sub/l', type: 'SymbolicLink', linkpath: 's/../../../etc' },
      ],
      /"sub\/l"/,
    ],
    ['a hardlink to /etc/passwd', [{ path: 'pw', type: 'Link', linkpath: '/etc/passwd' }], /"pw" is a hardlink/],
    ['a fifo', [{ path: 'pipe', type: 'FIFO' }], /"pipe" has unsupported type FIFO/],
    ['a device', [{ path: 'tty', type: 'CharacterDevice' }], /"tty" has unsupported type CharacterDevice/],
  ];

  it.each(hostile)('rejects %s and writes nothing', async (_name, entries, message) => {
    const root = await testdir();
    const file = path.join(root, 'evil.tar.gz');
    await rawTarGz(file, entries);
    const dest = path.join(root, 'a', 'out');
    const err = await unpackTarGz(file, dest).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TerminalError);
    expect((err as Error).message).toMatch(message);
    expect(await readdir(root)).toEqual(['evil.tar.gz']);
    await expect(lstat('/tmp/keelson-evil-abs')).rejects.toThrow();
  });

  it('rejects an archive larger than maxBytes unpacked', async () => {
    const root = await testdir();
    const file = path.join(root, 'a.tar.gz');
    await rawTarGz(file, [{ path: 'big', body: 'x'.repeat(4096) }]);
    await expect(unpackTarGz(file, path.join(root, 'out'), { maxBytes: 1000 })).rejects.toThrow(/byte limit/);
  });

  it('rejects a file that is not a tarball', async () => {
    const root = await testdir();
    const file = path.join(root, 'a.tar.gz');
    await writeFile(file, 'this is not gzip');
    await expect(unpackTarGz(file, path.join(root, 'out'))).rejects.toThrow(/not a readable \.tar\.gz/);
  });
});

describe('redactUrl', () => {
  it('drops credentials and the query string', () => {
    expect(redactUrl('https://bob:s3cret@example.com/a.tar.gz?token=abc')).toBe(
      'https://example.com/a.tar.gz?<redacted>',
    );
    expect(redactUrl('not a url')).toBe('<invalid URL>');
  });
});
