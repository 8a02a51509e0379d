import { describe, expect, it } from 'vitest';
import { findDocument, parseFile, removeDocument, setStrings } from './yaml-edit.js';

const text = `# Environments of the shop
apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata:
  name: staging   # what QA tests
spec:
  apps:
    web:
      version: "1.2.0"  # pinned
    worker: {}
    api:
---
# production
apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata: { name: prod }
spec:
  apps: { web: { version: '1.0.0' } }
`;

describe('yaml edits', () => {
  it('replaces an existing scalar in place, leaving every other byte alone', () => {
    const f = parseFile(text);
    const out = setStrings(f, findDocument(f, 'Environment', 'staging'), [{ path: ['spec', 'apps', 'web', 'version'], value: '1.3.0' }]);
    expect(out).toBe(text.replace('"1.2.0"', '"1.3.0"'));
  });

  it('replaces a single-quoted flow scalar in the second document', () => {
    const f = parseFile(text);
    const out = setStrings(f, findDocument(f, 'Environment', 'prod'), [{ path: ['spec', 'apps', 'web', 'version'], value: '1.2.0' }]);
    expect(out).toBe(text.replace("'1.0.0'", '"1.2.0"'));
  });

  it('adds keys under empty and null entries and keeps comments and the other document', () => {
    const f = parseFile(text);
    const out = setStrings(f, 0, [
      { path: ['spec', 'apps', 'worker', 'version'], value: '2.0' },
      { path: ['spec', 'apps', 'api', 'version'], value: '3.0' },
    ]);
    expect(out).toContain('# Environments of the shop');
    expect(out).toContain('# what QA tests');
    expect(out).toContain('version: "1.2.0" # pinned');
    expect(out).toContain('worker: { version: "2.0" }');
    expect(out).toMatch(/api:\n\s+version: "3.0"/);
    expect(out.slice(out.indexOf('---'))).toBe(text.slice(text.indexOf('---')));
    const again = parseFile(out);
    expect(again.docs[0].getIn(['spec', 'apps', 'api', 'version'])).toBe('3.0');
    expect(again.docs[1].getIn(['metadata', 'name'])).toBe('prod');
  });

  it('appends a new key to a block mapping as one line, indented like its siblings', () => {
    const src = 'spec:\n  apps:\n    web:\n      port: 80   # public\n      env:\n        A: "1"\n    api: {}\n';
    const out = setStrings(parseFile(src), 0, [{ path: ['spec', 'apps', 'web', 'version'], value: '2.0' }]);
    expect(out).toBe('spec:\n  apps:\n    web:\n      port: 80   # public\n      env:\n        A: "1"\n      version: "2.0"\n    api: {}\n');
  });

  it('removes one document and keeps the other verbatim', () => {
    const f = parseFile(text);
    const withoutFirst = removeDocument(f, 0);
    expect(parseFile(withoutFirst).docs.map((d) => d.getIn(['metadata', 'name']))).toEqual(['prod']);
    expect(withoutFirst).toContain("apps: { web: { version: '1.0.0' } }");
    const withoutSecond = removeDocument(f, 1);
    expect(parseFile(withoutSecond).docs.map((d) => d.getIn(['metadata', 'name']))).toEqual(['staging']);
    expect(withoutSecond).toContain('# what QA tests');
    expect(removeDocument(parseFile('kind: Environment\n'), 0)).toBe('');
  });
});
