import { expect, it } from 'vitest';
import { kubernetesSuite } from '../k8s.js';
import { runKubernetesCrashDriver } from '../crash-driver-k8s.mjs';

/**
 * Issue 10, item 3, Kubernetes applies: a real `keelson up` applying an environment of rolling, canary, blue/green
 * and plain-manifest apps (an Argo CD PostSync hook Job, a postSync deploy hook, prunes, an app added and removed)
 * to the test control plane is SIGKILLed at seeded random moments (a delay after a commit, or after a number of
 * object changes seen in the namespace) and restarted. Every time it must converge with one version per app,
 * inventory equal to live (no orphan object), the hooks run for the desired version, and history intact.
 * KEELSON_CRASH_SEED replays a run (the seed is printed).
 */
kubernetesSuite('the engine converges after SIGKILL during Kubernetes applies', () => {
  it('survives 3 kills during applies, rollouts, hooks and prunes', async () => {
    const seed = process.env.KEELSON_CRASH_SEED ? Number(process.env.KEELSON_CRASH_SEED) : Math.floor(Math.random() * 2 ** 31);
    const r = await runKubernetesCrashDriver({ seed, kills: 3, maxDelayMs: 5000 });
    expect({ seed, divergences: r.divergences }).toEqual({ seed, divergences: [] });
    expect(r.survived).toBe(3);
  }, 600_000);
});
