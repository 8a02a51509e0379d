/**
 * `keelson run` on Kubernetes: the command as a Job from the app's live pod template (see run-job.ts), waited for on
 * the watch; its output (the pod log) is written to the sink when it ends, then the Job and its pod are deleted.
 */
import { TerminalError } from '../../core/errors.js';
import type { Logger } from '../../log.js';
import type { RunResult, RunSink } from '../../run/one-off.js';
import { apiMessage, type Cluster } from './client.js';
import { podOfJob, waitForJob } from './pod-job.js';
import type { AppInventory } from './inventory.js';
import { podExit, runJob, runnableWorkload } from './run-job.js';
import type { ObjectWatch } from './watch.js';

export interface RunOnceContext {
  cluster: Cluster;
  watch: ObjectWatch;
  log: Logger;
  /** The environment's namespace (a workload without one is in it). */
  namespace: string;
  /** What the app last applied: its workload's pod template is the Job's. */
  deployed: AppInventory | undefined;
}

export async function runOnce(
  c: RunOnceContext,
  env: string,
  appName: string,
  argv: string[],
  io: { sink: RunSink; signal?: AbortSignal; timeoutMs?: number },
): Promise<RunResult> {
  const started = Date.now();
  const { cluster, watch } = c;
  const inv = c.deployed;
  if (!inv) throw new TerminalError(`app "${appName}" is not deployed in environment "${env}"; a one-off needs its pod template (see keelson status)`);
  const declared = runnableWorkload(inv.objects);
  if (!declared) throw new TerminalError(`app "${appName}" has no Deployment, StatefulSet, DaemonSet or ReplicaSet whose pod template a one-off could use`);
  await watch.ensure('batch/v1', 'Job');
  const job = runJob({ env, app: appName, namespace: declared.metadata.namespace ?? c.namespace, workload: watch.get(declared) ?? declared, argv, timeoutMs: io.timeoutMs });
  const container = (job as any).spec.template.spec.containers[0];
  container.env = [...(container.env ?? []).filter((e: { name: string }) => e.name !== 'KEELSON_RUN'), { name: 'KEELSON_RUN', value: '1' }];
  await cluster.api.create(job, 'keelson');
  c.log.info({ env, app: appName, job: job.metadata.name }, 'run started');
  const ns = job.metadata.namespace!;
  try {
    const state = await waitForJob(watch, job, io);
    const pod = await podOfJob(cluster, job);
    if (pod) await podLog(cluster, ns, pod.metadata.name, container.name, io.sink);
    const exit = podExit(pod as never);
    const deadline = ((watch.get(job) as any)?.status?.conditions ?? []).some((c: { reason?: string }) => c.reason === 'DeadlineExceeded');
    if (state === 'aborted' || deadline) return { code: null, signal: 'SIGTERM', durationMs: Date.now() - started };
    return { code: exit.code ?? (state === 'succeeded' ? 0 : 1), signal: null, durationMs: Date.now() - started };
  } finally {
    await cluster.api.delete(job, 'Background').catch(() => undefined);
  }
}

async function podLog(cluster: Cluster, ns: string, pod: string, container: string, sink: RunSink): Promise<void> {
  try {
    sink.stdout(Buffer.from(await cluster.api.podLog(ns, pod, container)));
  } catch (err) {
    sink.stderr(Buffer.from(`keelson: the log of pod ${ns}/${pod} is not available: ${apiMessage(err)}\n`));
  }
}
