import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers.js';
import { readFileInside, resolvesInside } from './inside.js';

describe('paths from the repository, symlinks resolved', () => {
  const tmp = tempDir('keelson-inside-');
  const repo = join(tmp.dir, 'repo');
  const outside = join(tmp.dir, 'outside');
  mkdirSync(join(repo, 'releases/web'), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(outside, 'id_ed25519'), 'PRIVATE');
  writeFileSync(join(repo, 'releases/web/server.js'), 'ok');
  symlinkSync(outside, join(repo, 'releases/evil'));
  symlinkSync('web', join(repo, 'releases/alias'));
  symlinkSync(join(outside, 'id_ed25519'), join(repo, 'key.yaml'));
  symlinkSync(join(outside, 'not-yet'), join(repo, 'dangling'));
  // The repository reached through a symlink itself (as a checkout dir might be) changes nothing.
  symlinkSync(repo, join(tmp.dir, 'repo-link'));
  afterAll(() => tmp.cleanup());

  it('tells a path inside from one a symlink leads out of', () => {
    expect(resolvesInside(repo, join(repo, 'releases/web'))).toBe(true);
    expect(resolvesInside(repo, join(repo, 'releases/alias'))).toBe(true);
    expect(resolvesInside(repo, join(repo, 'releases/not-there/x'))).toBe(true);
    expect(resolvesInside(repo, join(repo, 'releases/evil'))).toBe(false);
    expect(resolvesInside(repo, join(repo, 'releases/evil/sub/dir'))).toBe(false);
    expect(resolvesInside(repo, join(repo, 'key.yaml'))).toBe(false);
    expect(resolvesInside(repo, join(repo, 'dangling'))).toBe(false);
    expect(resolvesInside(join(tmp.dir, 'repo-link'), join(tmp.dir, 'repo-link', 'releases/web'))).toBe(true);
    expect(resolvesInside(join(tmp.dir, 'repo-link'), join(tmp.dir, 'repo-link', 'releases/evil'))).toBe(false);
  });

  it('reads a file only when it resolves inside', async () => {
    expect(await readFileInside(repo, 'releases/alias/server.js')).toBe('ok');
    await expect(readFileInside(repo, 'key.yaml')).rejects.toThrow(/key.yaml resolves to .*outside\/id_ed25519, outside the repository/);
  });
});
