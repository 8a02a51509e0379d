import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEngine, tickRepo, type EngineHarness } from '../../test/engine-harness.js';
import { commitAll, waitFor, writeTree } from '../../test/helpers.js';

/** An app that is ready only once `marker` exists (outside git: what a fix elsewhere looks like). */
const gatedApp = (name: string, marker: string) => `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: ${name} }
spec:
  version: "1"
  artifact: { path: ../gated }
  run: { command: ["node", "server.js"], env: { MARKER: ${JSON.stringify(marker)} } }
  readiness: { http: { path: /healthz } }
  rollout: { progressDeadlineSeconds: 2 }
`;

const gatedServer = `
const http = require('node:http');
const fs = require('node:fs');
http.createServer((req, res) => {
  res.statusCode = fs.existsSync(process.env.MARKER) ? 200 : 503;
  res.end();
}).listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
`;

describe('concurrent manual syncs of one environment', () => {
  let h: EngineHarness;
  let marker: string;
  const appStatus = async (name: string) => (await h.engine.status('dev')).environments[0].apps.find((a) => a.name === name);

  beforeAll(async () => {
    h = await startEngine(tickRepo, { prefix: 'keelson-manual-sync-' });
    marker = join(h.dir, 'ready');
    writeTree(h.ops, {
      'apps/one.yaml': gatedApp('one', marker),
      'apps/two.yaml': gatedApp('two', marker),
      'gated/server.js': gatedServer,
      'apps/tick.yaml': tickRepo['apps/tick.yaml'].replace('apps: { tick: {} }', 'apps: { tick: {}, one: {}, two: {} }'),
    });
    commitAll(h.ops, 'add one and two');
    await h.engine.refresh();
    for (const name of ['one', 'two']) await waitFor(`${name} Failed`, async () => (await appStatus(name))?.sync === 'Failed');
  });

  afterAll(() => h?.stop());

  it('are merged: each request is honoured and each caller hears the outcome of the sync that covered it', async () => {
    writeFileSync(marker, 'fixed outside git\n');
    const [one, two] = await Promise.all([h.engine.sync('dev', 'one'), h.engine.sync('dev', 'two', { force: true })]);
    expect(one.result).toBe('Succeeded');
    expect(two.result).toBe('Succeeded');
    for (const name of ['one', 'two']) expect((await appStatus(name))?.sync).not.toBe('Failed');
    expect(h.store.failures('dev')).toEqual([]);
  });
});
