import { chmod, lstat, mkdir, mkdtemp, readdir, rm, stat, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  hashDirectory,
  listReleases,
  materializeRelease,
  pruneReleases,
  verifyRelease,
} from './releases.js';

const cleanups: string[] = [];
afterEach(async () => {
  for (const d of cleanups.splice(0)) {
    // Releases are read-only; make everything writable again so the temp dir can go.
    await chmodTree(d).catch(() => {});
    await rm(d, { recursive: true, force: true });
  }
});

async function chmodTree(dir: string): Promise<void> {
  await chmod(dir, 0o755);
  for (const e of await readdir(dir, { withFileTypes: true })) if (e.isDirectory()) await chmodTree(path.join(dir, e.name));
}

async function testdir(): Promise<string> {
  const d = await mkdtemp(path.join(tmpdir(), 'keelson-releases-'));
  cleanups.push(d);
  return d;
}

async function makeSource(dir: string, files: Record<string, string> = { 'server.js': 'listen()', 'lib/util.js': 'u' }): Promise<string> {
  for (const [rel, body] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await writeFile(path.join(dir, rel), body);
  }
  return dir;
}

describe('hashDirectory', () => {
  it('depends on paths, contents, exec bits and symlink targets, not on timestamps', async () => {
    const root = await testdir();
    const a = await makeSource(path.join(root, 'a'));
    const b = await makeSource(path.join(root, 'b'));
    const h = await hashDirectory(a);
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    expect(await hashDirectory(b)).toBe(h);

    await utimes(path.join(b, 'server.js'), 1, 1);
    expect(await hashDirectory(b)).toBe(h);

    await chmod(path.join(b, 'server.js'), 0o755);
    const execHash = await hashDirectory(b);
    expect(execHash).not.toBe(h);
    await chmod(path.join(b, 'server.js'), 0o644);

    await writeFile(path.join(b, 'lib/util.js'), 'v');
    expect(await hashDirectory(b)).not.toBe(h);
    await writeFile(path.join(b, 'lib/util.js'), 'u');
    expect(await hashDirectory(b)).toBe(h);

    await symlink('server.js', path.join(b, 'link'));
    const linked = await hashDirectory(b);
    await unlink(path.join(b, 'link'));
    await symlink('lib/util.js', path.join(b, 'link'));
    expect(await hashDirectory(b)).not.toBe(linked);
  });

  it('counts empty directories and distinguishes a moved file', async () => {
    const root = await testdir();
    const a = await makeSource(path.join(root, 'a'), { 'x/f': '1' });
    const b = await makeSource(path.join(root, 'b'), { 'y/f': '1' });
    expect(await hashDirectory(a)).not.toBe(await hashDirectory(b));
    const h = await hashDirectory(a);
    await mkdir(path.join(a, 'empty'));
    expect(await hashDirectory(a)).not.toBe(h);
  });

  it('hashes a few thousand files', async () => {
    const root = await testdir();
    const files: Record<string, string> = {};
    for (let i = 0; i < 3000; i++) files[`d${i % 30}/f${i}.js`] = `module.exports = ${i};\n`;
    const a = await makeSource(path.join(root, 'a'), files);
    expect(await hashDirectory(a)).toBe(await hashDirectory(a));
  });
});

describe('materializeRelease', () => {
  it('copies the source into a read-only directory named version-hash', async () => {
    const root = await testdir();
    const src = await makeSource(path.join(root, 'src'));
    await chmod(path.join(src, 'server.js'), 0o755);
    await symlink('server.js', path.join(src, 'start'));
    const releasesDir = path.join(root, 'releases');

    const r = await materializeRelease({ releasesDir, app: 'web', version: '1.4.0', sourceDir: src });
    expect(r.hash).toBe(await hashDirectory(src));
    expect(r.id).toBe(`1.4.0-${r.hash.slice(0, 12)}`);
    expect(r.dir).toBe(path.join(releasesDir, 'web', r.id));
    expect(await hashDirectory(r.dir)).toBe(r.hash);
    expect((await stat(r.dir)).mode & 0o777).toBe(0o555);
    expect((await stat(path.join(r.dir, 'lib'))).mode & 0o777).toBe(0o555);
    expect((await stat(path.join(r.dir, 'server.js'))).mode & 0o777).toBe(0o555);
    expect((await stat(path.join(r.dir, 'lib/util.js'))).mode & 0o777).toBe(0o444);
    expect((await lstat(path.join(r.dir, 'start'))).isSymbolicLink()).toBe(true);
  });

  it('is idempotent: the same content yields the same release without copying again', async () => {
    const root = await testdir();
    const src = await makeSource(path.join(root, 'src'));
    const releasesDir = path.join(root, 'releases');
    const first = await materializeRelease({ releasesDir, app: 'web', version: '1', sourceDir: src });
    const ino = (await stat(path.join(first.dir, 'server.js'))).ino;
    const again = await materializeRelease({ releasesDir, app: 'web', version: '1', sourceDir: src });
    expect(again).toEqual(first);
    expect((await stat(path.join(again.dir, 'server.js'))).ino).toBe(ino);

    await writeFile(path.join(src, 'server.js'), 'changed');
    const next = await materializeRelease({ releasesDir, app: 'web', version: '1', sourceDir: src });
    expect(next.id).not.toBe(first.id);
    expect((await listReleases(releasesDir, 'web')).map((r) => r.id).sort()).toEqual([first.id, next.id].sort());
  });

  it('is safe to run concurrently for the same release', async () => {
    const root = await testdir();
    const src = await makeSource(path.join(root, 'src'));
    const releasesDir = path.join(root, 'releases');
    const results = await Promise.all(
      Array.from({ length: 6 }, () => materializeRelease({ releasesDir, app: 'web', version: '2', sourceDir: src })),
    );
    expect(new Set(results.map((r) => r.id)).size).toBe(1);
    expect((await readdir(path.join(releasesDir, 'web'))).sort()).toEqual(['.meta', results[0].id]);
    expect((await verifyRelease(results[0])).intact).toBe(true);
  });

  it('refuses app or version names that are not a single path segment', async () => {
    const root = await testdir();
    const src = await makeSource(path.join(root, 'src'));
    const releasesDir = path.join(root, 'releases');
    await expect(materializeRelease({ releasesDir, app: 'web', version: '../x', sourceDir: src })).rejects.toThrow(
      /version "\.\.\/x" cannot name a release directory/,
    );
    await expect(materializeRelease({ releasesDir, app: '', version: '1', sourceDir: src })).rejects.toThrow(/app ""/);
  });
});

describe('verifyRelease', () => {
  it('reports changed, added and removed files of a live release', async () => {
    const root = await testdir();
    const src = await makeSource(path.join(root, 'src'), { 'a.js': 'a', 'b.js': 'b', 'lib/c.js': 'c' });
    const r = await materializeRelease({ releasesDir: path.join(root, 'releases'), app: 'web', version: '1', sourceDir: src });
    expect(await verifyRelease(r)).toEqual({ intact: true, changed: [] });

    await chmod(r.dir, 0o755);
    await chmod(path.join(r.dir, 'lib'), 0o755);
    await chmod(path.join(r.dir, 'a.js'), 0o644);
    await writeFile(path.join(r.dir, 'a.js'), 'edited in place');
    await rm(path.join(r.dir, 'b.js'));
    await writeFile(path.join(r.dir, 'lib/new.js'), 'n');
    await chmod(path.join(r.dir, 'lib/c.js'), 0o555);
    expect(await verifyRelease(r)).toEqual({ intact: false, changed: ['a.js', 'b.js', 'lib/c.js', 'lib/new.js'] });
  });

  it('reports a deleted release as not intact', async () => {
    const root = await testdir();
    const src = await makeSource(path.join(root, 'src'), { 'a.js': 'a' });
    const r = await materializeRelease({ releasesDir: path.join(root, 'releases'), app: 'web', version: '1', sourceDir: src });
    await chmod(r.dir, 0o755);
    await rm(r.dir, { recursive: true });
    expect(await verifyRelease(r)).toEqual({ intact: false, changed: ['a.js'] });
  });
});

describe('pruneReleases', () => {
  it('keeps the newest releases and those in use', async () => {
    const root = await testdir();
    const releasesDir = path.join(root, 'releases');
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) {
      const src = await makeSource(path.join(root, `src${i}`), { 'v.txt': String(i) });
      const r = await materializeRelease({ releasesDir, app: 'web', version: `1.${i}.0`, sourceDir: src });
      await utimes(r.dir, 1_000_000 + i, 1_000_000 + i); // release i is newer than i-1
      ids.push(r.id);
    }
    expect((await listReleases(releasesDir, 'web')).map((r) => r.id)).toEqual([...ids].reverse());

    const removed = await pruneReleases({ releasesDir, app: 'web', keep: 3, inUse: new Set([ids[1]]) });
    expect(removed).toEqual([ids[0], ids[2], ids[3], ids[4]].sort());
    const left = await listReleases(releasesDir, 'web');
    expect(left.map((r) => r.id)).toEqual([ids[7], ids[6], ids[5], ids[1]]);
    expect(left[0]).toMatchObject({ version: '1.7.0', hash: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect((await readdir(path.join(releasesDir, 'web', '.meta'))).sort()).toEqual(left.map((r) => `${r.id}.json`).sort());
    expect(await pruneReleases({ releasesDir, app: 'web', inUse: new Set() })).toEqual([]);
  });

  it('returns nothing for an app without releases', async () => {
    const root = await testdir();
    expect(await pruneReleases({ releasesDir: root, app: 'none', inUse: new Set() })).toEqual([]);
    expect(await listReleases(root, 'none')).toEqual([]);
  });
});
