import { describe, expect, it } from 'vitest';
import { runCommitCrashDriver } from '../crash-driver-commits.mjs';

/**
 * Issue 10, item 3, engine commits: a real `keelson up` that commits to its (bare) ops repository — version
 * automation and a rollback through the API — is SIGKILLed with the git commands it runs at seeded random moments of
 * those commits (some as soon as it runs `git worktree add`, `commit` or `push`), then restarted. Every time the ops
 * repository must hold no stale lock and pass `git fsck`, every engine commit be whole and made once, the next commit
 * go through, and the engine converge to HEAD. KEELSON_CRASH_SEED replays a run (the seed is printed).
 */
describe('the engine converges after SIGKILL during its own commits', () => {
  it('survives 4 kills during version automation and API rollbacks', async () => {
    const seed = process.env.KEELSON_CRASH_SEED ? Number(process.env.KEELSON_CRASH_SEED) : Math.floor(Math.random() * 2 ** 31);
    const r = await runCommitCrashDriver({ seed, kills: 4, maxDelayMs: 4000, convergeMs: 60_000 });
    expect({ seed, divergences: r.divergences }).toEqual({ seed, divergences: [] });
    expect(r.survived).toBe(4);
  }, 240_000);
});
