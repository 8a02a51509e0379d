/**
 * resolveDependencies on chart directories written by hand (no network, no helm): what is used as it is and what is
 * refused before anything is fetched. Fetching and rendering with the real helm: chart-source.int.test.ts.
 */
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TerminalError, ValidationError } from '../../core/errors.js';
import { resolveDependencies } from './chart-source.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** An ops repository with files (path → content) under a temp dir; returns its root. */
async function repoWith(files: Record<string, string>): Promise<string> {
  const root = await mkdtemp(path.join(tmpdir(), 'keelson-deps-'));
  dirs.push(root);
  for (const [rel, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, rel)), { recursive: true });
    await writeFile(path.join(root, rel), text);
  }
  return root;
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

const chartYaml = (deps: string) => `apiVersion: v2\nname: app\nversion: 1.0.0\n${deps}`;

describe('resolveDependencies', () => {
  it('renders a chart without dependencies, or with all of them in charts/, from where it is', async () => {
    const root = await repoWith({
      'plain/Chart.yaml': chartYaml(''),
      'vendored/Chart.yaml': chartYaml('dependencies:\n  - name: sub\n    version: ~0.1.0\n    repository: https://charts.example.com\n  - name: lib\n    version: 1.x\n    repository: file://../lib\n'),
      'vendored/charts/sub-0.1.3.tgz': 'not read',
      'vendored/charts/lib/Chart.yaml': 'apiVersion: v2\nname: lib\nversion: 1.2.0\n',
    });
    const cacheDir = path.join(root, '.cache');
    expect(await resolveDependencies(path.join(root, 'plain'), { cacheDir, repoRoot: root })).toEqual({ dir: path.join(root, 'plain'), dependencies: [] });
    expect(await resolveDependencies(path.join(root, 'vendored'), { cacheDir, repoRoot: root })).toEqual({
      dir: path.join(root, 'vendored'),
      dependencies: [
        { name: 'sub', version: '0.1.3', repository: 'https://charts.example.com', from: 'vendored' },
        { name: 'lib', version: '1.2.0', repository: 'file://../lib', from: 'vendored' },
      ],
    });
    expect(await readdir(root)).not.toContain('.cache');
  });

  it('refuses Helm repository names, missing repositories and missing Chart.lock entries, each at its line', async () => {
    const root = await repoWith({
      'app/Chart.yaml': chartYaml(
        'dependencies:\n' +
          '  - name: a\n    version: 1.0.0\n    repository: "@stable"\n' +
          '  - name: b\n    version: 1.0.0\n' +
          '  - name: c\n    version: 1.0.0\n    repository: https://charts.example.com\n',
      ),
      'app/Chart.lock': 'dependencies:\n  - name: a\n    repository: "@stable"\n    version: 1.0.0\n  - name: b\n    repository: ""\n    version: 1.0.0\n',
    });
    const err = await rejection(resolveDependencies(path.join(root, 'app'), { cacheDir: path.join(root, '.cache'), repoRoot: root }));
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.message.split('\n')).toEqual([
      'app/Chart.yaml:7:17: dependency a: @stable names a repository in Helm\'s local repository list, which Keelson does not use; write the repository URL',
      'app/Chart.yaml:8:5: dependency b: not in charts/ and no repository to fetch it from (https://…, oci://… or file://…)',
      'app/Chart.yaml:10:5: dependency c (https://charts.example.com) is not in Chart.lock: run `helm dependency update` and commit Chart.lock',
    ]);
  });

  it('refuses to copy a chart with a symlink out of the repository', async () => {
    const root = await repoWith({
      'app/Chart.yaml': chartYaml('dependencies:\n  - name: lib\n    version: 0.0.1\n    repository: file://../lib\n'),
      'app/Chart.lock': 'dependencies:\n  - name: lib\n    repository: file://../lib\n    version: 0.0.1\n',
      'lib/Chart.yaml': 'apiVersion: v2\nname: lib\nversion: 0.0.1\n',
    });
    const outside = await repoWith({ 'secret.txt': 'not for the chart' });
    await symlink(path.join(outside, 'secret.txt'), path.join(root, 'app', 'values-extra.yaml'));
    const err = await rejection(resolveDependencies(path.join(root, 'app'), { cacheDir: path.join(root, '.cache'), repoRoot: root }));
    expect(err).toBeInstanceOf(TerminalError);
    expect(err.message).toBe('app/values-extra.yaml: a symlink out of the repository; refused');
  });
});
