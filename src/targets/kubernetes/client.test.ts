import http from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { tempDir } from '../../../test/helpers.js';
import { connect, statusCode } from './client.js';

/**
 * What the API server answers while a resource's watch cache fills (after a restart, or a CRD just created): 429
 * "storage is (re)initializing" with `Retry-After`. A list during that moment used to fail a whole sync.
 */
const tmp = tempDir('keelson-client-');
afterAll(() => tmp.cleanup());

async function serverRefusing(times: number): Promise<{ url: string; seen: () => number; close: () => void }> {
  let seen = 0;
  const server = http.createServer((req, res) => {
    seen++;
    if (seen <= times) {
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '0' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'storage is (re)initializing', reason: 'TooManyRequests', details: { retryAfterSeconds: 1 }, code: 429 }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'ConfigMapList', apiVersion: 'v1', metadata: {}, items: [] }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, seen: () => seen, close: () => server.close() };
}

function kubeconfigFor(url: string, name: string): string {
  const file = join(tmp.dir, name);
  writeFileSync(file, JSON.stringify({ apiVersion: 'v1', kind: 'Config', 'current-context': 'c', clusters: [{ name: 'c', cluster: { server: url } }], users: [{ name: 'u', user: {} }], contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }] }));
  return file;
}

it('sends a request again after the API server refused it with 429 and Retry-After', async () => {
  const server = await serverRefusing(2);
  const { api, release } = connect({ kubeconfig: kubeconfigFor(server.url, 'twice') });
  try {
    expect(await api.request('GET', '/api/v1/configmaps')).toMatchObject({ kind: 'ConfigMapList' });
    expect(server.seen()).toBe(3);
  } finally {
    release();
    server.close();
  }
});

it('gives up after a few refusals, with the server status', async () => {
  const server = await serverRefusing(100);
  const { api, release } = connect({ kubeconfig: kubeconfigFor(server.url, 'always') });
  try {
    const err = (await api.request('GET', '/api/v1/configmaps').catch((e: Error) => e)) as Error;
    expect(statusCode(err)).toBe(429);
    expect(err.message).toBe('storage is (re)initializing');
    expect(server.seen()).toBe(6);
  } finally {
    release();
    server.close();
  }
});
