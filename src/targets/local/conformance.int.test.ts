import { appServer } from '../../../test/helpers.js';
import { describeTargetConformance } from '../conformance.js';
import { LocalTarget } from './local-target.js';

let target: LocalTarget;
let killed: number | undefined;

describeTargetConformance({
  name: 'local',
  targetYaml: () => '{ local: {} }',
  appFiles: (name, v) => ({
    [`apps/${name}.yaml`]: `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: ${name} }
spec:
  version: "${v.version}"
  artifact: { path: "../releases/${name}-{version}" }
  run: { command: ["node", "server.js"], env: { GREETING: ${v.greeting} } }
  readiness: { http: { path: /healthz }, periodSeconds: 1 }
  rollout: { progressDeadlineSeconds: 5 }
  terminationGracePeriodSeconds: 2
`,
    [`releases/${name}-${v.version}/server.js`]: appServer(v.version, { notReady: v.neverReady }),
  }),
  createTarget: async (ctx) => {
    target = new LocalTarget({ stateDir: ctx.stateDir, store: ctx.store, bus: ctx.bus, log: ctx.log, requeue: ctx.requeue });
    return target;
  },
  fingerprint: async (env, app) => JSON.stringify(target.supervisor.status(env).filter((s) => s.app === app).map((s) => [s.release.id, s.instances.map((i) => i.pid)])),
  drift: async (env, app) => {
    const pid = target.supervisor.status(env).find((s) => s.app === app)!.instances[0].pid;
    killed = pid;
    process.kill(pid, 'SIGKILL');
  },
  healed: async (env, app) => {
    const s = target.supervisor.status(env).find((x) => x.app === app);
    return !!s && s.health === 'Healthy' && s.instances.length === s.spec.replicas && s.instances.every((i) => i.pid !== killed && i.ready);
  },
  cleanup: async () => {
    await target.supervisor.stopAll();
    await target.proxy.stop();
  },
  skips: { kept: 'a local app is one supervised process group with no separate objects; an app is kept by leaving it in the environment' },
});
