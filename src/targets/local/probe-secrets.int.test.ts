import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commitAll, gitInit, tempDir, waitFor, writeTree } from '../../../test/helpers.js';
import { Engine } from '../../engine/engine.js';
import { EventBus, type Stamped } from '../../core/events.js';
import { silentLogger } from '../../log.js';
import { generateKey } from '../../secrets/age-keys.js';
import { encryptSops, parsePlain } from '../../secrets/sops.js';
import { Store } from '../../store/store.js';
import { LocalTarget } from './local-target.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * An exec probe in the release dir that passes only when it sees the secret env var (compared by hash: the
 * plaintext is in no file of the repository), or always when given `any` for the hash. Each run appends
 * `<replica> <probe> secret|no-secret` to $PROBE_LOG.
 */
const probeScript = `
const { createHash } = require('node:crypto');
const { appendFileSync } = require('node:fs');
const ok = createHash('sha256').update(process.env.DB_PASSWORD ?? '').digest('hex') === process.argv[3];
appendFileSync(process.env.PROBE_LOG, process.env.KEELSON_REPLICA + ' ' + process.argv[2] + ' ' + (ok ? 'secret' : 'no-secret') + '\\n');
process.exit(ok || process.argv[3] === 'any' ? 0 : 1);
`;

/** Exec readiness and liveness probes run with the replica's own environment, secret env vars included. */
describe('exec probes with secret env vars (local target)', () => {
  const tmp = tempDir('keelson-probe-secrets-');
  const ops = join(tmp.dir, 'ops');
  const state = join(tmp.dir, 'state');
  const probeLog = join(tmp.dir, 'probes.log');
  const password = `pw-${randomBytes(8).toString('hex')}`;
  const events: Stamped[] = [];
  let store: Store;
  let target: LocalTarget;
  let engine: Engine;

  // Node takes well over the default second to start on a loaded 2-core CI machine: a probe killed by its timeout
  // three times in a row would end the replica (liveness), which is not what these tests are about.
  const probeTimeoutSeconds = 5;
  const app = (name: string, expectedSha: string) => `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: ${name} }
spec:
  version: "1.0.0"
  artifact: { path: ../releases/db-client }
  run:
    command: ["node", "-e", "setInterval(() => {}, 1000)"]
    env: { PROBE_LOG: ${JSON.stringify(probeLog)} }
  readiness:
    exec: { command: ["node", "probe.js", "readiness", "${expectedSha}"] }
    periodSeconds: 1
    timeoutSeconds: ${probeTimeoutSeconds}
  liveness:
    exec: { command: ["node", "probe.js", "liveness", "${expectedSha}"] }
    periodSeconds: 1
    timeoutSeconds: ${probeTimeoutSeconds}
  rollout: { progressDeadlineSeconds: 3 }
  terminationGracePeriodSeconds: 1
  secrets:
    env:
      - { name: DB_PASSWORD, file: ../secrets/db.enc.yaml, key: password }
`;
  const env = (apps: string[]) => `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata: { name: dev }
spec:
  apps: {${apps.map((a) => ` ${a}: {}`).join(',')} }
`;
  const appState = async (name: string) => (await engine.status('dev')).environments[0]?.apps.find((a) => a.name === name);
  const probeLines = (replicaPrefix: string) =>
    existsSync(probeLog) ? readFileSync(probeLog, 'utf8').split('\n').filter((l) => l.startsWith(replicaPrefix)) : [];

  const startEngine = async () => {
    const log = silentLogger();
    store = new Store(state);
    const bus = new EventBus();
    bus.subscribe((e) => events.push(e));
    target = new LocalTarget({ stateDir: state, store, bus, log, requeue: (e) => engine.requeue(e) });
    engine = new Engine({ repo: ops, stateDir: state, log, store, bus, target, pollMs: 60_000 });
    await engine.start();
  };

  beforeAll(async () => {
    const key = await generateKey();
    writeFileSync(join(tmp.dir, 'age.txt'), key.file, { mode: 0o600 });
    process.env.KEELSON_AGE_KEY_FILE = join(tmp.dir, 'age.txt');
    writeTree(ops, {
      'apps/db-client.yaml': app('db-client', sha(password)),
      'apps/wrong.yaml': app('wrong', sha(`not-${password}`)),
      'environments/dev.yaml': env(['db-client']),
      'releases/db-client/probe.js': probeScript,
      'secrets/db.enc.yaml': await encryptSops(parsePlain(`password: ${password}\n`, 'yaml', 'db'), { format: 'yaml', recipients: [key.recipient] }),
    });
    gitInit(ops);
    commitAll(ops, 'db-client with an exec probe that needs its secret');
    await startEngine();
  });

  afterAll(async () => {
    await target?.supervisor.stopAll();
    await target?.proxy.stop();
    await engine?.stop();
    store?.close();
    delete process.env.KEELSON_AGE_KEY_FILE;
    tmp.cleanup();
  });

  it('makes the app Healthy when readiness and liveness probes see the secret env var', async () => {
    await waitFor('db-client healthy', async () => {
      const a = await appState('db-client');
      return a?.health === 'Healthy' && a.sync === 'Synced';
    });
    // Liveness runs once the replica is ready; it too gets the secret (else it would kill the replica).
    await waitFor('liveness probed', () => probeLines('db-client-').some((l) => l.endsWith(' liveness secret')));
    expect(probeLines('db-client-').filter((l) => l.endsWith('no-secret'))).toEqual([]);
  });

  it('reports a probe that fails without showing the secret in status or events', async () => {
    writeFileSync(join(ops, 'environments/dev.yaml'), env(['db-client', 'wrong']));
    commitAll(ops, 'add wrong');
    await engine.refresh();
    // A new app that never gets ready: the sync fails, saying why (the probe's exit code, nothing it saw).
    const failed = await waitFor('sync failed', () => events.find((e) => e.type === 'sync.completed' && e.result === 'Failed'));
    expect(failed).toMatchObject({ message: expect.stringContaining('readiness: exec probe exited 1') });
    expect(probeLines('wrong-').some((l) => l.endsWith(' readiness no-secret'))).toBe(true);
    const shown = JSON.stringify([await engine.status(), events]);
    expect(shown).toContain('exec probe exited 1');
    expect(shown).not.toContain(password);
  });

  it('gives an adopted replica its secret env vars after an engine restart', async () => {
    const before = (await appState('db-client'))!.instances[0] as { id: string; pid: number };
    await engine.stop();
    store.close();
    writeFileSync(probeLog, '');
    await startEngine();
    // Adopted (same pid), then probed at once: its env is made again from the kept ciphertext.
    await waitFor('adopted replica probed', () => probeLines(`${before.id} readiness`).length > 0 && probeLines(`${before.id} liveness`).length > 0);
    const after = (await appState('db-client'))!;
    expect(after.instances.map((i) => (i as { pid: number }).pid)).toEqual([before.pid]);
    expect(after.health).toBe('Healthy');
    expect(probeLines(before.id).filter((l) => l.endsWith('no-secret'))).toEqual([]);
  });

  it('runs no more probes of the replicas a stopped engine leaves running', async () => {
    const { id } = (await appState('db-client'))!.instances[0] as { id: string };
    await engine.stop();
    // Probes under way when it stopped end within their timeout; none may start after that.
    await new Promise((r) => setTimeout(r, probeTimeoutSeconds * 1000 + 500));
    writeFileSync(probeLog, '');
    await new Promise((r) => setTimeout(r, 3000));
    expect(probeLines(id)).toEqual([]);
    store.close();
    await startEngine();
    await waitFor('probed again by the new engine', () => probeLines(`${id} liveness secret`).length > 0);
  });

  it('keeps probing a serving replica, without its secrets, when they cannot be decrypted', async () => {
    writeFileSync(join(ops, 'apps/plain.yaml'), app('plain', 'any'));
    writeFileSync(join(ops, 'environments/dev.yaml'), env(['db-client', 'wrong', 'plain']));
    commitAll(ops, 'add plain, whose probes pass with or without the secret');
    await engine.refresh();
    await waitFor('plain healthy', async () => (await appState('plain'))?.health === 'Healthy');
    const before = (await appState('plain'))!.instances[0] as { id: string; pid: number };
    // The engine restarts without its age key: the kept ciphertext no longer decrypts.
    await engine.stop();
    store.close();
    process.env.KEELSON_AGE_KEY_FILE = join(tmp.dir, 'no-such-key.txt');
    writeFileSync(probeLog, '');
    await startEngine();
    // The probes run (past liveness' failure threshold of 3), without the secret, and pass: the replica is not killed.
    await waitFor('probed without secrets', () => probeLines(`${before.id} liveness no-secret`).length >= 4);
    const after = (await appState('plain'))!;
    expect(after.instances.map((i) => (i as { pid: number }).pid)).toEqual([before.pid]);
    expect(after.health).toBe('Healthy');
  });
});
