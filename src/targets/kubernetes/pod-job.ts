/**
 * A command run to its end as a Job made from an app's pod template (see run-job.ts): deploy hook `exec` steps and
 * rollout analysis `exec` checks on Kubernetes. Created, waited for on the watch, its pod's log read, deleted.
 * The Job never retries itself (the hook runner retries with a new Job); the timeout is `activeDeadlineSeconds`.
 */
import { apiMessage, type Cluster } from './client.js';
import { hookState } from './hooks.js';
import type { KObject } from './objects.js';
import { podExit, runJob } from './run-job.js';
import type { ObjectWatch } from './watch.js';

export interface PodJobResult {
  /** `succeeded`/`failed` as the Job ended; `timeout` when its deadline passed; `aborted` when cancelled. */
  state: 'succeeded' | 'failed' | 'timeout' | 'aborted';
  /** The container's exit code when it ran to an end. */
  code: number | null;
  /** The end of the pod's log (stdout and stderr merged by Kubernetes). */
  output: string;
  job: string;
}

const OUTPUT_LIMIT = 8 * 1024;

export async function runPodJob(o: {
  cluster: Cluster;
  watch: ObjectWatch;
  env: string;
  app: string;
  namespace: string;
  workload: KObject;
  argv: string[];
  vars: Record<string, string>;
  timeoutMs: number;
  signal?: AbortSignal;
}): Promise<PodJobResult> {
  const { cluster, watch } = o;
  const job = runJob({ env: o.env, app: o.app, namespace: o.namespace, workload: o.workload, argv: o.argv, timeoutMs: o.timeoutMs });
  const container = (job as any).spec.template.spec.containers[0];
  const names = new Set(Object.keys(o.vars));
  container.env = [...(container.env ?? []).filter((e: { name: string }) => !names.has(e.name)), ...Object.entries(o.vars).map(([name, value]) => ({ name, value }))];
  await watch.ensure('batch/v1', 'Job');
  await cluster.api.create(job, 'keelson');
  const name = job.metadata.name;
  try {
    const state = await waitForJob(watch, job, o);
    const live = watch.get(job) as { status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] } } | undefined;
    const deadline = (live?.status?.conditions ?? []).some((c) => c.reason === 'DeadlineExceeded');
    const pod = await podOfJob(cluster, job);
    const output = pod ? await podLog(cluster, o.namespace, pod.metadata.name, container.name) : '';
    const exit = podExit(pod as never);
    if (state === 'aborted') return { state: o.signal?.aborted ? 'aborted' : 'timeout', code: null, output, job: name };
    if (deadline) return { state: 'timeout', code: exit.code, output, job: name };
    return { state, code: exit.code ?? (state === 'succeeded' ? 0 : null), output, job: name };
  } finally {
    await cluster.api.delete(job, 'Background').catch(() => undefined);
  }
}

/**
 * Until the Job ends on the watch (`succeeded`/`failed`), the signal aborts, or its deadline plus 30 s passed
 * (`aborted`: activeDeadlineSeconds ends the Job at the timeout; this is the backstop if the cluster never says so).
 */
export function waitForJob(watch: ObjectWatch, job: KObject, o: { timeoutMs?: number; signal?: AbortSignal }): Promise<'succeeded' | 'failed' | 'aborted'> {
  return new Promise((resolve) => {
    const timer = o.timeoutMs ? setTimeout(() => finish('aborted'), o.timeoutMs + 30_000) : undefined;
    const onAbort = () => finish('aborted');
    const check = () => {
      const s = hookState(watch.get(job));
      if (s !== 'running') finish(s);
    };
    const off = watch.onObjects([job], check);
    o.signal?.addEventListener('abort', onAbort, { once: true });
    function finish(s: 'succeeded' | 'failed' | 'aborted') {
      if (timer) clearTimeout(timer);
      off();
      o.signal?.removeEventListener('abort', onAbort);
      resolve(s);
    }
    check();
  });
}

/** The pod a Job ran (its first, as these Jobs never retry), if any. */
export async function podOfJob(cluster: Cluster, job: KObject): Promise<KObject | undefined> {
  const [pod] = await cluster.api.list('v1', 'Pod', { namespace: job.metadata.namespace, labelSelector: `batch.kubernetes.io/job-name=${job.metadata.name}` });
  return pod;
}

/** The whole log of a finished pod's container, its end kept; a note when the log cannot be read. */
async function podLog(cluster: Cluster, ns: string, pod: string, container: string): Promise<string> {
  try {
    return (await cluster.api.podLog(ns, pod, container)).slice(-OUTPUT_LIMIT);
  } catch (err) {
    return `\n(the log of pod ${ns}/${pod} is not available: ${apiMessage(err)})`;
  }
}

/** One line saying how a Job ended, for hook and analysis messages. */
export function describeJobEnd(r: PodJobResult, timeoutMs: number): string {
  if (r.state === 'timeout') return `Job ${r.job} timed out after ${timeoutMs / 1000}s (activeDeadlineSeconds)`;
  if (r.state === 'aborted') return `Job ${r.job} cancelled`;
  if (r.state === 'succeeded') return `Job ${r.job} succeeded${r.code !== null ? ` (exit ${r.code})` : ''}`;
  return `Job ${r.job} failed${r.code !== null ? ` (exit ${r.code})` : ''}`;
}
