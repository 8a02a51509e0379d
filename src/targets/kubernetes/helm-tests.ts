/**
 * A chart's test hooks (`helm.sh/hook: test`), run as hooks are (created afresh, waited for, deleted per their delete
 * policy) by `keelson test` or after a sync (`spec.helm.tests: afterSync`). Each result carries the log of the pod
 * the test ran (a Pod, or a Job's pod) when the cluster has one. They run in weight order and all run, so one report
 * says which passed and which failed.
 */
import { formatKey, LABEL_HOOK, type KObject } from './objects.js';
import { deletePolicies, hookIdentity, isGeneratedHook, type HookRunner } from './hooks.js';
import { sortForApply } from './order.js';

export interface HelmTestResult {
  /** `Job/ns/name` */
  key: string;
  name: string;
  result: 'passed' | 'failed';
  message: string;
  /** The pod's log; absent when the cluster has none (or the pod never ran). */
  log?: string;
}

export interface HelmTestReport {
  ok: boolean;
  message: string;
  tests: HelmTestResult[];
}

export async function runHelmTests(
  tests: KObject[],
  runner: HookRunner,
  logOf: (test: KObject) => Promise<string | undefined>,
  timeoutMs: number,
): Promise<HelmTestReport> {
  const out: HelmTestResult[] = [];
  for (const declared of sortForApply(tests)) {
    // A test written with generateName is created afresh and found again by its hook label (hooks.ts).
    const generated = isGeneratedHook(declared);
    const hook = generated ? { ...declared, metadata: { ...declared.metadata, labels: { ...declared.metadata.labels, [LABEL_HOOK]: hookIdentity(declared, 'Test') } } } : declared;
    const policies = deletePolicies(hook);
    if (policies.has('BeforeHookCreation')) await (generated ? runner.deleteRuns(hook) : runner.deleteAndWait(hook));
    const { result: applied, created } = await runner.apply(hook);
    if (applied.action === 'failed') {
      const key = formatKey(hook);
      out.push({ key, name: hook.metadata.name ?? hook.metadata.generateName ?? key, result: 'failed', message: applied.message ?? `${key} could not be created` });
      continue;
    }
    const test = created ?? hook;
    const key = formatKey(test);
    const state = await runner.waitFor(test, timeoutMs);
    const log = await logOf(test).catch(() => undefined);
    const passed = state === 'succeeded';
    out.push({
      key,
      name: test.metadata.name,
      result: passed ? 'passed' : 'failed',
      message: passed ? 'succeeded' : state === 'timeout' ? `did not finish within ${Math.round(timeoutMs / 1000)}s` : 'failed',
      ...(log !== undefined ? { log } : {}),
    });
    if ((passed && policies.has('HookSucceeded')) || (!passed && policies.has('HookFailed'))) await runner.deleteAndWait(test);
  }
  const failed = out.filter((t) => t.result === 'failed');
  const message = out.length === 0
    ? 'the chart has no test hooks (helm.sh/hook: test)'
    : failed.length
      ? `helm test: ${failed.map((t) => `${t.key} ${t.message}`).join('; ')}`
      : `helm test: ${out.length} passed`;
  return { ok: failed.length === 0, message, tests: out };
}
