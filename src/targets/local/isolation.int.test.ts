import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commitAll, freePort, gitInit, tempDir, waitFor, writeTree } from '../../../test/helpers.js';
import { Engine } from '../../engine/engine.js';
import { EventBus, type Stamped } from '../../core/events.js';
import { silentLogger } from '../../log.js';
import { generateKey } from '../../secrets/age-keys.js';
import { encryptSops, parsePlain } from '../../secrets/sops.js';
import { Store } from '../../store/store.js';
import { detectCgroups, type CgroupSystem } from './cgroups.js';
import { grantSecretFiles, type IsolationPolicy } from './isolation.js';
import { LocalTarget } from './local-target.js';
import { lookupUser } from './users.js';

/**
 * Each app its own user, with limits: real processes, real users, real cgroups. Needs root and writable cgroups;
 * elsewhere the suite is skipped with the reason, except in CI on Linux as root, where it must run.
 */
const users = ['keelson-test-a', 'keelson-test-b'];
/** The group of gid 65534 (`nogroup` on Debian, `nobody` elsewhere): beta runs with it instead of its own. */
const otherGroup = () => execFileSync('getent', ['group', '65534'], { encoding: 'utf8' }).split(':')[0];
const root = process.platform === 'linux' && process.getuid?.() === 0;
const mustRun = !!process.env.CI && root;
const why = process.platform !== 'linux' ? 'not Linux' : !root ? 'not root: switching users and creating cgroups needs root' : undefined;

function ensureUsers(): void {
  for (const u of users) {
    try {
      execFileSync('getent', ['passwd', u]);
    } catch {
      execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', u]);
    }
  }
}

interface Booted {
  dir: string;
  ops: string;
  state: string;
  store: Store;
  target: LocalTarget;
  engine: Engine;
  events: Stamped[];
  tmp: { dir: string; cleanup(): void };
  stop(): Promise<void>;
}

async function boot(files: Record<string, string>, isolation: IsolationPolicy): Promise<Booted> {
  const tmp = tempDir('keelson-isolation-');
  // mkdtemp makes 0700 dirs: the app users must be able to pass through to the state dir, as under /var/lib.
  chmodSync(tmp.dir, 0o711);
  const ops = join(tmp.dir, 'ops');
  writeTree(ops, files);
  gitInit(ops);
  commitAll(ops, 'initial');
  return bootOn(tmp, ops, isolation);
}

/** An engine on an existing repository and state dir (a restart when one ran there before). */
async function bootOn(tmp: { dir: string; cleanup(): void }, ops: string, isolation: IsolationPolicy): Promise<Booted> {
  const state = join(tmp.dir, 'state');
  const log = silentLogger();
  const store = new Store(state);
  const bus = new EventBus();
  const events: Stamped[] = [];
  bus.subscribe((e) => events.push(e));
  // History, as `keelson up` records it (until this engine is stopped and its store closed).
  bus.subscribe((e) => {
    const { type, time, seq: _seq, ...data } = e as Record<string, any>;
    if (store.db.open) store.addEvent({ time, type, env: data.env || undefined, app: data.app || undefined, data });
  });
  let engine: Engine | undefined;
  const target = new LocalTarget({ stateDir: state, store, bus, log, requeue: (env) => engine?.requeue(env), isolation });
  engine = new Engine({ repo: ops, stateDir: state, log, store, bus, target, pollMs: 60_000 });
  await engine.start();
  return {
    dir: tmp.dir,
    ops,
    state,
    store,
    target,
    engine,
    events,
    tmp,
    stop: async () => {
      await target.supervisor.stopAll();
      await target.proxy.stop();
      await engine!.stop();
      store.close();
      tmp.cleanup();
    },
  };
}

const app = (name: string, spec: string) => `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: ${name} }
spec:
  version: "1"
  artifact: { path: ../bin }
  rollout: { progressDeadlineSeconds: 20 }
${spec}
---
`;
const environment = (apps: string[]) => `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata: { name: dev }
spec:
  apps: {${apps.map((a) => ` ${a}: {}`).join(',')} }
`;

/** Writes a secret into its $DATA_DIR; GET /try?path=P tries to read P (a file, or a directory's listing). */
const probeApp = `
const fs = require('node:fs');
const http = require('node:http');
fs.writeFileSync(process.env.DATA_DIR + '/secret.txt', 'mine: ' + process.env.KEELSON_APP);
http.createServer((req, res) => {
  const p = new URL(req.url, 'http://x').searchParams.get('path');
  try {
    const st = fs.statSync(p);
    res.end(st.isDirectory() ? 'listed ' + fs.readdirSync(p).join(',') : 'read ' + fs.readFileSync(p, 'utf8'));
  } catch (err) {
    res.end(err.code);
  }
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

/** Allocates and touches 8 MiB every 20 ms until something stops it. */
const hogApp = `const a = []; setInterval(() => a.push(Buffer.alloc(8 << 20, 1)), 20);`;

const appsOf = async (b: Booted) => (await b.engine.status('dev')).environments[0]?.apps ?? [];
const appOf = async (b: Booted, name: string) => (await appsOf(b)).find((a) => a.name === name);
const instanceOf = async (b: Booted, name: string) => (await appOf(b, name))?.instances[0] as Record<string, any> | undefined;

describe.skipIf(!!why && !mustRun)(`app isolation on the local target${why ? ` (skipped: ${why})` : ''}`, () => {
  let b: Booted;
  let sys: CgroupSystem;
  let ports: number[];

  beforeAll(async () => {
    if (why) throw new Error(`the isolation suite must run in CI on Linux as root: ${why}`);
    ensureUsers();
    sys = await detectCgroups();
    ports = [await freePort(), await freePort()];
    b = await boot(
      {
        'apps/apps.yaml':
          app('alpha', `  user: ${users[0]}\n  port: ${ports[0]}\n  run: { command: [node, probe.js] }`) +
          app('beta', `  user: { name: ${users[1]}, group: ${otherGroup()} }\n  port: ${ports[1]}\n  run: { command: [node, probe.js] }`) +
          app('limited', `  user: ${users[0]}\n  resources: { memory: 128Mi, cpu: 250m, pids: 50, openFiles: 1024 }\n  run: { command: [node, -e, "setInterval(() => {}, 1000)"] }`),
        'apps/dev.yaml': environment(['alpha', 'beta', 'limited']),
        'bin/probe.js': probeApp,
        'bin/hog.js': hogApp,
      },
      { allowRootApps: false },
    );
    await waitFor('apps healthy', async () => {
      const apps = await appsOf(b);
      return apps.length === 3 && apps.every((a) => a.health === 'Healthy');
    });
  });

  afterAll(async () => {
    await b?.stop();
  });

  const get = async (port: number, path: string) => (await fetch(`http://127.0.0.1:${port}/try?path=${encodeURIComponent(path)}`)).text();

  it('runs each app as its own user and group, supplementary groups cleared', async () => {
    const a = (await instanceOf(b, 'alpha'))!;
    const beta = (await instanceOf(b, 'beta'))!;
    const ua = (await lookupUser(users[0]))!;
    const ub = (await lookupUser(users[1]))!;
    expect(a.user).toMatchObject({ name: users[0], uid: ua.uid, gid: ua.gid });
    expect(beta.user).toMatchObject({ name: users[1], group: otherGroup(), uid: ub.uid, gid: 65534 });
    const status = readFileSync(`/proc/${beta.pid}/status`, 'utf8');
    expect(status).toMatch(new RegExp(`^Uid:\\t${ub.uid}\\t${ub.uid}\\t${ub.uid}\\t${ub.uid}$`, 'm'));
    expect(status).toMatch(/^Gid:\t65534\t65534\t65534\t65534$/m);
    expect(status).toMatch(/^Groups:\s*$/m);
    // `keelson run` one-offs run as the app's user too, with its $DATA_DIR.
    let out = '';
    const run = await b.target.runOnce('dev', 'alpha', ['sh', '-c', 'echo "$(id -u) $(id -G) $HOME $DATA_DIR"'], { sink: { stdout: (c) => (out += c), stderr: (c) => (out += c) } });
    expect(run.code).toBe(0);
    expect(out.trim()).toBe(`${ua.uid} ${ua.gid} ${ua.home} ${join(b.state, 'data', 'dev', 'alpha')}`);
  });

  it('gives each app a private $DATA_DIR that no other app can read, and releases only its own group can enter', async () => {
    const dataA = join(b.state, 'data', 'dev', 'alpha');
    const dataB = join(b.state, 'data', 'dev', 'beta');
    const st = statSync(dataA);
    expect(st.mode & 0o777).toBe(0o700);
    expect(st.uid).toBe((await lookupUser(users[0]))!.uid);
    // Each reads its own data, not the other's: neither the file nor the listing.
    expect(await get(ports[0], join(dataA, 'secret.txt'))).toBe('read mine: alpha');
    expect(await get(ports[1], join(dataB, 'secret.txt'))).toBe('read mine: beta');
    expect(await get(ports[1], join(dataA, 'secret.txt'))).toBe('EACCES');
    expect(await get(ports[1], dataA)).toBe('EACCES');
    // Nor its release: the directory is the engine's, group alpha's, 0750; inside, read-only.
    const releasesA = join(b.state, 'releases', 'dev', 'alpha');
    expect(await get(ports[1], join(releasesA, (await instanceOf(b, 'alpha'))!.release, 'probe.js'))).toBe('EACCES');
    expect(await get(ports[0], join(releasesA, (await instanceOf(b, 'alpha'))!.release, 'probe.js'))).toMatch(/^read /);
    expect(statSync(releasesA).mode & 0o777).toBe(0o750);
    expect(statSync(releasesA).uid).toBe(0);
    // Nor the engine's own files: the state dir can be passed through, not listed, and the store is not readable.
    expect(await get(ports[1], b.state)).toBe('EACCES');
    expect(await get(ports[1], join(b.state, 'keelson.db'))).toBe('EACCES');
    expect(await get(ports[1], join(b.state, 'logs'))).toBe('EACCES');
  });

  it('makes decrypted secret files readable by the app user only', async () => {
    const state = join(b.dir, 'secrets-state');
    const files = join(state, 'secrets', 'dev', 'alpha', 'tmpl', 'files');
    mkdirSync(join(files, 'conf'), { recursive: true, mode: 0o700 });
    chmodSync(join(state, 'secrets'), 0o700);
    writeFileSync(join(files, 'conf', 'db.json'), '{"password":"s3cret"}', { mode: 0o600 });
    const [ua, ub] = [(await lookupUser(users[0]))!, (await lookupUser(users[1]))!];
    await grantSecretFiles(state, files, { user: ua.name, group: ua.name, uid: ua.uid, gid: ua.gid, home: ua.home });
    const cat = (u: typeof ua) => spawnSync('cat', [join(files, 'conf', 'db.json')], { uid: u.uid, gid: u.gid, encoding: 'utf8' });
    expect(cat(ua).stdout).toBe('{"password":"s3cret"}');
    expect(cat(ub).stderr).toContain('Permission denied');
    // Passed through, never listed.
    expect(spawnSync('ls', [join(state, 'secrets')], { uid: ua.uid, gid: ua.gid, encoding: 'utf8' }).stderr).toContain('Permission denied');
  });

  it('enforces resources with cgroups and an rlimit, and says so in status', async () => {
    const i = (await instanceOf(b, 'limited'))!;
    const kind = sys.version === 'v2' ? 'cgroup-v2' : 'cgroup-v1';
    expect(sys.version, `cgroups must be writable as root here: ${JSON.stringify(sys.missing)}`).not.toBe('none');
    expect(i.limits).toEqual({
      memory: { value: '128Mi', enforcement: kind },
      cpu: { value: '250m', enforcement: kind },
      pids: { value: '50', enforcement: kind },
      openFiles: { value: '1024', enforcement: 'rlimit' },
    });
    expect(readFileSync(`/proc/${i.pid}/limits`, 'utf8')).toMatch(/^Max open files\s+1024\s+1024\s+files/m);
    const cgroups = readFileSync(`/proc/${i.pid}/cgroup`, 'utf8');
    expect(cgroups).toContain(`keelson/dev/limited/${i.id}`);
    if (sys.version === 'v1') {
      const dir = (c: string) => i.cgroups.find((d: string) => d.includes(`/${c}/`));
      expect(readFileSync(join(dir('memory'), 'memory.limit_in_bytes'), 'utf8').trim()).toBe(String(128 * 2 ** 20));
      expect(readFileSync(join(dir('cpu'), 'cpu.cfs_quota_us'), 'utf8').trim()).toBe('25000');
      expect(readFileSync(join(dir('pids'), 'pids.max'), 'utf8').trim()).toBe('50');
    }
  });

  it('finds each replica, its user and its cgroups again after an engine restart', async () => {
    const before = (await instanceOf(b, 'limited'))!;
    await b.engine.stop();
    b.store.close();
    b = await bootOn(b.tmp, b.ops, { allowRootApps: false });
    await waitFor('apps healthy again', async () => {
      const apps = await appsOf(b);
      return apps.length === 3 && apps.every((a) => a.health === 'Healthy');
    });
    const after = (await instanceOf(b, 'limited'))!;
    expect(after.pid).toBe(before.pid);
    expect(after.user).toEqual(before.user);
    expect(after.limits).toEqual(before.limits);
    expect(after.cgroups).toEqual(before.cgroups);
    expect(b.events.some((e) => e.type === 'replica.adopted' && e.app === 'limited')).toBe(true);
  });

  it('reports a replica over its memory limit as OOMKilled and restarts it with backoff; removes its cgroups with it', async () => {
    writeTree(b.ops, {
      'apps/hog.yaml': app('hog', `  user: ${users[1]}\n  resources: { memory: 64Mi }\n  run: { command: [node, hog.js] }`),
      'apps/dev.yaml': environment(['alpha', 'beta', 'limited', 'hog']),
    });
    commitAll(b.ops, 'a hog');
    await b.engine.refresh();
    await waitFor('two OOM kills', () => b.events.filter((e) => e.type === 'replica.exited' && e.app === 'hog' && e.reason === 'OOMKilled').length >= 2, 60_000);
    const restarts = b.events.filter((e) => e.type === 'replica.restarted' && e.app === 'hog');
    expect(restarts[0]).toMatchObject({ reason: 'OOMKilled', delayMs: 0 });
    expect(restarts[1]).toMatchObject({ reason: 'OOMKilled', delayMs: 1000 });
    const hog = await waitFor('hog degraded', async () => {
      const a = await appOf(b, 'hog');
      return a?.health === 'Degraded' && a;
    }, 60_000);
    expect(hog.message).toContain('OOMKilled: over its memory limit of 64Mi');
    expect((hog.instances[0] as any).reason).toBe('OOMKilled');
    // History keeps the reason too.
    expect(JSON.stringify(b.store.events({ env: 'dev', app: 'hog' }))).toContain('"reason":"OOMKilled"');

    // Removed from the environment: its replica and its cgroups go.
    const dirs: string[] = (await instanceOf(b, 'hog'))!.cgroups;
    writeTree(b.ops, { 'apps/dev.yaml': environment(['alpha', 'beta', 'limited']) });
    commitAll(b.ops, 'no hog');
    await b.engine.refresh();
    await waitFor('hog gone', async () => !(await appOf(b, 'hog')));
    await waitFor('cgroups removed', () => dirs.every((d) => !existsSync(d)));
  });

  it('runs deploy hooks of an app as its user', async () => {
    writeTree(b.ops, {
      'apps/hooked.yaml': app('hooked', `  user: ${users[0]}\n  run: { command: [node, -e, "setInterval(() => {}, 1000)"] }\n  hooks: { preSync: [{ exec: { command: [sh, -c, "pwd; ls"] } }], postSync: [{ exec: { command: [sh, -c, "id -u; id -G; echo $HOME"] } }] }`),
      'apps/dev.yaml': environment(['alpha', 'beta', 'limited', 'hooked']),
    });
    commitAll(b.ops, 'a hooked app');
    await b.engine.refresh();
    const done = await waitFor('postSync hook ran', () => b.events.find((e) => e.type === 'hook.completed' && e.app === 'hooked' && e.phase === 'postSync'));
    const ua = (await lookupUser(users[0]))!;
    expect(done).toMatchObject({ ok: true, output: `${ua.uid}\n${ua.gid}\n${ua.home}\n` });
    // preSync, meant for the new artifact's directory, ran in the release made from it (checkouts are closed to apps).
    const pre = b.events.find((e) => e.type === 'hook.completed' && e.app === 'hooked' && e.phase === 'preSync') as any;
    const release = (await instanceOf(b, 'hooked'))!.release;
    expect(pre).toMatchObject({ ok: true, output: `${join(b.state, 'releases', 'dev', 'hooked', release)}\nhog.js\nprobe.js\n` });
  });

  it('gives an app its decrypted secret files, readable by its user and no other', async () => {
    const key = await generateKey();
    writeFileSync(join(b.dir, 'age.txt'), key.file, { mode: 0o600 });
    process.env.KEELSON_AGE_KEY_FILE = join(b.dir, 'age.txt');
    const readSecret = "require('fs').readFileSync(process.env.KEELSON_SECRETS_DIR + '/db.yaml'); setInterval(() => {}, 1000)";
    writeTree(b.ops, {
      'apps/vault.yaml': app('vault', `  user: ${users[0]}\n  run: { command: [node, -e, ${JSON.stringify(readSecret)}] }\n  secrets: { files: [{ file: ../secrets/db.enc.yaml, path: db.yaml }] }`),
      'apps/dev.yaml': environment(['alpha', 'beta', 'limited', 'hooked', 'vault']),
      'secrets/db.enc.yaml': await encryptSops(parsePlain('password: s3cret\n', 'yaml', 'db'), { format: 'yaml', recipients: [key.recipient] }),
    });
    commitAll(b.ops, 'vault, with a secret file');
    await b.engine.refresh();
    // It reads its file (else it would crash-loop).
    await waitFor('vault healthy', async () => (await appOf(b, 'vault'))?.health === 'Healthy');
    const dir = join(b.state, 'secrets', 'dev', 'vault');
    const files = join(dir, readdirSync(dir)[0], 'files', 'db.yaml');
    expect(await get(ports[1], files)).toBe('EACCES');
    expect(statSync(files).uid).toBe((await lookupUser(users[0]))!.uid);
    delete process.env.KEELSON_AGE_KEY_FILE;
  });

  it('keeps live apps untouched when a user does not exist, with the error at file:line:col', async () => {
    const before = (await instanceOf(b, 'alpha'))!.pid;
    writeTree(b.ops, { 'apps/apps.yaml': readFileSync(join(b.ops, 'apps/apps.yaml'), 'utf8').replace(`user: ${users[0]}\n  port`, 'user: keelson-no-such-user\n  port') });
    commitAll(b.ops, 'unknown user');
    await b.engine.refresh();
    const alpha = await waitFor('render error shown', async () => {
      const a = await appOf(b, 'alpha');
      return a?.message.includes('keelson-no-such-user') && a;
    });
    expect(alpha.message).toMatch(/apps\/apps\.yaml:8:9: app "alpha" in environment "dev": user "keelson-no-such-user" does not exist on this machine/);
    expect((await instanceOf(b, 'alpha'))!.pid).toBe(before);
  });
});

describe.skipIf(!!why && !mustRun)(`an engine running as root${why ? ` (skipped: ${why})` : ''}`, () => {
  it('refuses apps without user: unless its config allows it, naming the fixes; a defaultUser runs them', async () => {
    if (why) throw new Error(`must run in CI on Linux as root: ${why}`);
    ensureUsers();
    const files = {
      'apps/apps.yaml': app('plain', '  run: { command: [node, -e, "setInterval(() => {}, 1000)"] }'),
      'apps/dev.yaml': environment(['plain']),
      'bin/README': 'inline app\n',
    };
    const refused = await boot(files, { allowRootApps: false });
    try {
      const plain = await waitFor('refused', async () => {
        const a = await appOf(refused, 'plain');
        return a?.sync === 'Failed' && a;
      });
      expect(plain.message).toContain('refusing to run app "plain" as root: the engine runs as root and App "plain" (apps/apps.yaml:1:1) names no user');
      expect(plain.message).toContain('allowRootApps: true');
      expect(plain.instances).toEqual([]);
    } finally {
      await refused.stop();
    }
    const defaulted = await boot(files, { allowRootApps: false, defaultUser: users[1] });
    try {
      const i = await waitFor('runs as the default user', async () => {
        const a = await appOf(defaulted, 'plain');
        return a?.health === 'Healthy' && (a.instances[0] as any);
      });
      expect(i.user.name).toBe(users[1]);
    } finally {
      await defaulted.stop();
    }
  });
});
