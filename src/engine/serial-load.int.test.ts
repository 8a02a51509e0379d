import { basename } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { renderRepository } from '../render/index.js';
import { startEngine, tickRepo, type EngineHarness } from '../../test/engine-harness.js';
import { commitAll, waitFor, writeTree } from '../../test/helpers.js';

const tickAt = (version: string) => ({ 'apps/tick.yaml': tickRepo['apps/tick.yaml'].replace('version: "1"', `version: "${version}"`) });

describe('revision loading', () => {
  let h: EngineHarness | undefined;
  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });

  it('serializes loads: an older revision that renders slowly never supersedes a newer one', async () => {
    // The render seam holds revision A back until revision B was fetched and either loaded (before the fix) or
    // queued behind A (after it).
    let holdBack: string | undefined;
    let release: (() => Promise<void>) | undefined;
    let holding!: () => void;
    const held = new Promise<void>((r) => (holding = r));
    h = await startEngine(tickRepo, {
      prefix: 'keelson-serial-load-',
      engine: {
        render: async (opts) => {
          if (holdBack && basename(opts.root) === holdBack) {
            holding();
            await release!();
          }
          return renderRepository(opts);
        },
      },
    });
    const { engine, ops } = h;

    writeTree(ops, tickAt('2'));
    const a = commitAll(ops, 'tick 2');
    holdBack = a;
    let bLoaded = false;
    let b = '';
    release = () => waitFor('revision B loaded or queued', () => bLoaded || (b !== '' && engine.pendingRevision === b), 20_000).then(() => undefined);
    const loadA = engine.refresh();
    await held;

    writeTree(ops, tickAt('3'));
    b = commitAll(ops, 'tick 3');
    const loadB = engine.refresh().then((r) => {
      bLoaded = true;
      return r;
    });
    await Promise.all([loadA, loadB]);

    const status = await engine.status();
    expect(status.revision).toBe(b);
    expect(status.environments[0].revision).toBe(b);
    await waitFor('tick at version 3', async () => (await engine.status()).environments[0].apps.find((x) => x.name === 'tick')?.version === '3');
    expect((await engine.status()).environments[0].apps[0].desiredVersion).toBe('3');
  });
});
