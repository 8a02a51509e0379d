/**
 * Crash tests only: `KEELSON_TEST_KILL_AT=<point>` makes the engine process SIGKILL itself when it reaches that
 * point, so that a test can stop it exactly in a window that a random kill reaches only sometimes:
 *   written   (Kubernetes) an apply's objects written, not yet recorded by the target;
 *   recorded  (Kubernetes) the target's record written, before PostSync hooks;
 *   applied   (Kubernetes) the target's apply done, before the engine recorded it;
 *   synced    (any target) the target reported success, before the engine recorded the sync.
 */
export type KillPoint = 'written' | 'recorded' | 'applied' | 'synced';

export function killPoint(point: KillPoint): void {
  if (process.env.KEELSON_TEST_KILL_AT === point) process.kill(process.pid, 'SIGKILL');
}
