import { describe, expect, it } from 'vitest';
import { formatJsonnetError, isJsonnetDir, jsonnetArgs, jsonnetObjects } from './jsonnet.js';

const cm = (name: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name } });

describe('Jsonnet parameters → argv', () => {
  it('maps strings and code to the -str and -code flags, sorted by name, libraries as -J, the file after --', () => {
    const args = jsonnetArgs(
      { tlas: { replicas: { code: '3' }, name: 'web' }, extVars: { env: 'prod', flags: { code: '{ debug: true }' } }, libs: ['lib', 'vendor'] },
      'apps/gb/main.jsonnet',
      ['apps/gb', 'lib', 'vendor'],
    );
    expect(args).toEqual([
      '--tla-str', 'name=web',
      '--tla-code', 'replicas=3',
      '--ext-str', 'env=prod',
      '--ext-code', 'flags={ debug: true }',
      '-J', 'apps/gb', '-J', 'lib', '-J', 'vendor',
      '--', 'apps/gb/main.jsonnet',
    ]);
  });

  it('keeps a value with "=" and spaces whole (one argv element, never a shell word)', () => {
    expect(jsonnetArgs({ tlas: { q: 'a=b c; rm -rf /' }, extVars: {}, libs: [] }, 'm.jsonnet', [])).toEqual(['--tla-str', 'q=a=b c; rm -rf /', '--', 'm.jsonnet']);
  });

  it('without parameters passes only the file', () => {
    expect(jsonnetArgs(undefined, 'm.jsonnet', [])).toEqual(['--', 'm.jsonnet']);
  });
});

describe('Jsonnet output shapes', () => {
  it('accepts a single object, an array, nested arrays and a List', () => {
    expect(jsonnetObjects(cm('a'), 'f.jsonnet')).toEqual([cm('a')]);
    expect(jsonnetObjects([cm('a'), [cm('b'), null]], 'f.jsonnet')).toEqual([cm('a'), cm('b')]);
    expect(jsonnetObjects({ apiVersion: 'v1', kind: 'List', items: [cm('a'), cm('b')] }, 'f.jsonnet')).toEqual([cm('a'), cm('b')]);
  });

  it('accepts an object of objects (the jsonnet -m form), values in key order', () => {
    expect(jsonnetObjects({ 'svc.json': cm('s'), 'deploy.json': cm('d'), more: [cm('x')] }, 'f.jsonnet')).toEqual([cm('s'), cm('d'), cm('x')]);
  });

  it('an empty array is no objects', () => {
    expect(jsonnetObjects([], 'f.jsonnet')).toEqual([]);
  });

  it('rejects scalars and objects that are not manifests, naming the file and where', () => {
    expect(() => jsonnetObjects('hello', 'f.jsonnet')).toThrow(/f\.jsonnet: output \(top level\) is string/);
    expect(() => jsonnetObjects([cm('a'), 3], 'f.jsonnet')).toThrow(/\(top level\)\[1\] is number/);
    expect(() => jsonnetObjects({ metadata: { name: 'x' }, spec: {} }, 'f.jsonnet')).toThrow(/\.metadata has no apiVersion and kind/);
    expect(() => jsonnetObjects({ name: 'x' }, 'f.jsonnet')).toThrow(/\(top level\) has no apiVersion and kind/);
  });
});

describe('Jsonnet directories and errors', () => {
  it('a directory with a .jsonnet file is Jsonnet; .libsonnet alone is not', () => {
    expect(isJsonnetDir(['main.jsonnet', 'params.libsonnet'])).toBe(true);
    expect(isJsonnetDir(['params.libsonnet', 'a.yaml'])).toBe(false);
  });

  it('places a runtime error at its innermost frame', () => {
    const stderr = 'RUNTIME ERROR: replicas must be positive\n\tapps/gb/main.jsonnet:4:12-45\tobject <anonymous>\n\tDuring manifestation\t\n';
    expect(formatJsonnetError('apps/gb/main.jsonnet', stderr)).toBe('apps/gb/main.jsonnet:4:12: jsonnet error: replicas must be positive');
  });

  it('places a syntax error at its token', () => {
    const stderr = 'apps/gb/main.jsonnet:3:5-6 Expected a comma before next field\n\n  x: 1\n';
    expect(formatJsonnetError('apps/gb/main.jsonnet', stderr)).toBe('apps/gb/main.jsonnet:3:5: jsonnet syntax error: Expected a comma before next field');
  });

  it('falls back to the file when Jsonnet names no position', () => {
    expect(formatJsonnetError('m.jsonnet', 'something odd\n')).toBe('m.jsonnet: jsonnet error: something odd');
  });
});
