/**
 * Deploy hook `exec` steps on Kubernetes (src/hooks/): each attempt is one Job made from the app's pod template —
 * the template being deployed when there is one (preSync runs the new image, e.g. a migration), else the live one
 * (preDelete) — with the hook's variables in its environment, `timeoutSeconds` as `activeDeadlineSeconds`, and the
 * pod's log as the step's output. The hook runner retries with a new Job.
 */
import { TerminalError } from '../../core/errors.js';
import type { HookExecRequest } from '../target.js';
import type { Cluster } from './client.js';
import type { KObject } from './objects.js';
import { describeJobEnd, runPodJob } from './pod-job.js';
import { runnableWorkload } from './run-job.js';
import type { ObjectWatch } from './watch.js';

export async function hookJob(
  d: { cluster: Cluster; watch: ObjectWatch; namespace: string; objects: KObject[] },
  r: HookExecRequest,
): Promise<{ ok: boolean; message: string; output: string }> {
  const declared = runnableWorkload(d.objects);
  if (!declared) throw new TerminalError(`app ${r.app} has no Deployment, StatefulSet, DaemonSet or ReplicaSet whose pod template a hook Job could use`);
  const res = await runPodJob({
    cluster: d.cluster,
    watch: d.watch,
    env: r.env,
    app: r.app,
    namespace: declared.metadata.namespace ?? d.namespace,
    workload: declared,
    argv: r.argv,
    vars: r.vars,
    timeoutMs: r.timeoutMs,
    signal: r.signal,
  });
  return { ok: res.state === 'succeeded' && (res.code ?? 0) === 0, message: describeJobEnd(res, r.timeoutMs), output: res.output };
}
