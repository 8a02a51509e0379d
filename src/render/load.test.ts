import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import { formatIssue } from '../core/types.js';
import { loadDocuments, parseYaml } from './load.js';

async function writeRepo(files: Record<string, string>): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'keelson-load-'));
  onTestFinished(() => rm(root, { recursive: true, force: true }));
  for (const [file, text] of Object.entries(files)) {
    await mkdir(dirname(join(root, file)), { recursive: true });
    await writeFile(join(root, file), text);
  }
  return root;
}

const doc = (name: string) => `apiVersion: keelson.dev/v1alpha1\nkind: App\nmetadata: { name: ${name} }\n`;
const names = (docs: { file: string; index: number }[]) => docs.map((d) => `${d.file}#${d.index}`);

describe('loadDocuments', () => {
  test('reads .yaml and .yml files recursively, several documents per file, in path order', async () => {
    const root = await writeRepo({
      'b.yml': doc('b'),
      'a/x.yaml': `${doc('x')}---\n${doc('y')}---\n`,
      'a/deep/z.YAML': doc('z'),
      'a/readme.md': doc('no'),
      '.git/config.yaml': doc('no'),
      '.hidden/a.yaml': doc('no'),
      'node_modules/p/a.yaml': doc('no'),
      'empty.yaml': '',
    });
    const { docs, issues } = await loadDocuments(root);
    expect(issues).toEqual([]);
    expect(names(docs)).toEqual(['a/deep/z.YAML#0', 'a/x.yaml#0', 'a/x.yaml#1', 'a/x.yaml#2', 'b.yml#0']);
  });

  test("skips the templates of Helm charts (a directory with a Chart.yaml), even when they mention keelson.dev", async () => {
    const root = await writeRepo({
      'charts/web/Chart.yaml': 'apiVersion: v2\nname: web\nversion: 0.1.0\n',
      'charts/web/templates/job.yaml': 'metadata: { labels: { keelson.dev/x: {{ .Values.x }} } }\n  : [\n',
      'charts/web/charts/sub/Chart.yaml': 'apiVersion: v2\nname: sub\nversion: 0.1.0\n',
      'charts/web/charts/sub/templates/cm.yaml': '# keelson.dev/ {{ if }}\n  : [\n',
      'charts/web/app.yaml': doc('web'),
      'templates/app.yaml': doc('t'),
    });
    const { docs, issues } = await loadDocuments(root);
    expect(issues).toEqual([]);
    expect(names(docs)).toEqual(['charts/web/app.yaml#0', 'templates/app.yaml#0']);
  });

  test('skips symlinks and files that never mention keelson.dev, whatever their syntax', async () => {
    const root = await writeRepo({ 'a.yaml': doc('a'), 'helm/t.yaml': 'kind: {{ .Values.kind }}\n  : [\n' });
    await symlink(join(root, 'a.yaml'), join(root, 'link.yaml'));
    const { docs, issues } = await loadDocuments(root);
    expect(issues).toEqual([]);
    expect(names(docs)).toEqual(['a.yaml#0']);
  });

  test('limits loading to a path inside the root', async () => {
    const root = await writeRepo({ 'ops/a.yaml': doc('a'), 'other/b.yaml': doc('b') });
    expect(names((await loadDocuments(root, 'ops')).docs)).toEqual(['ops/a.yaml#0']);
    expect(names((await loadDocuments(root, 'other/b.yaml')).docs)).toEqual(['other/b.yaml#0']);
    expect((await loadDocuments(root, 'missing')).issues.map(formatIssue)).toMatchInlineSnapshot(`
      [
        "missing:1:1: path "missing" does not exist in the repository; check the path (relative to the repository root)",
      ]
    `);
    const outside = await loadDocuments(root, '../x');
    expect(outside.docs).toEqual([]);
    expect(outside.issues.map((i) => formatIssue(i).replace(root, '<root>'))).toMatchInlineSnapshot(`
      [
        "../x:1:1: path "../x" is outside the repository root <root>; give a path inside the repository",
      ]
    `);
  });
});

describe('loadDocuments: re-loading', () => {
  test('reuses unchanged files and picks up changed ones', async () => {
    const root = await writeRepo({ 'a.yaml': doc('a'), 'b.yaml': doc('b') });
    const first = await loadDocuments(root);
    await writeFile(join(root, 'b.yaml'), doc('b2'));
    const second = await loadDocuments(root);
    expect(second.docs[0]).toBe(first.docs[0]);
    expect(second.docs[1]).not.toBe(first.docs[1]);
    expect(second.docs.map((d) => d.doc.getIn(['metadata', 'name']))).toEqual(['a', 'b2']);
  });
});

describe('parseYaml', () => {
  test('reports syntax errors at their line:col and keeps the valid documents of the file', () => {
    const text = `${doc('a')}---\napiVersion: keelson.dev/v1alpha1\nspec:\n  run: [a, b\n---\n${doc('c')}---\nk: v\nk: w\n`;
    const { docs, issues } = parseYaml('apps/x.yaml', text);
    expect(names(docs)).toEqual(['apps/x.yaml#0', 'apps/x.yaml#2']);
    expect(issues.map(formatIssue)).toMatchInlineSnapshot(`
      [
        "apps/x.yaml:8:1: YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]",
        "apps/x.yaml:14:1: YAML syntax error: Map keys must be unique",
      ]
    `);
  });
});
