/**
 * The crash driver's engine-commit mode (issue 10, item 3): the engine writes to its ops repository itself — version
 * automation (`--auto-update-interval`) and GitOps rollback from the API — and is killed with SIGKILL, together with
 * the git processes it runs (as when its container dies), at random moments (seeded) of those
 * commits: while it plans in its temporary worktree, commits, pushes or deploys what it pushed. It is restarted, and
 * once it says it converged the driver checks:
 * - no stale lock in the ops repository (`*.lock` under the bare remote) and `git fsck --full` clean: a commit is
 *   there whole or not at all;
 * - every commit Keelson made is whole (its trailer, `Keelson-Actor:` / `Keelson-Rollback:`, is in its message) and
 *   no version bump was committed twice;
 * - the next commit is not blocked: the automation commits the newest release after every restart, and a rollback
 *   after the last kill is answered 200;
 * - the engine converges to whatever HEAD is: it deployed the remote head, every app Synced and Healthy at the
 *   version HEAD declares;
 * - history intact: the store opens (`pragma integrity_check`) and lists every completed sync.
 * Used by test/e2e/crash-driver-commits.test.ts (a few kills) and bench/crash-driver.mjs (a longer run).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { parse } from 'yaml';
import { freePort, git, sleep, waitFor, writeTree as write } from '../bench/lib.mjs';
import { bin, engineProcess, gitCommand, gitProcesses, lockFiles, prng } from './crash-lib.mjs';

const server = (version) => `const http = require('node:http');
const s = http.createServer((req, res) => res.end(req.url === '/healthz' ? 'ok' : 'version ${version}\\n'));
s.listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => { s.close(() => process.exit(0)); s.closeIdleConnections(); });
`;

/**
 * Runs the engine-commit mode. Returns `{ seed, kills, survived, byKind: {auto, rollback}, divergences, convergenceMs }`.
 */
export async function runCommitCrashDriver(o = {}) {
  const seed = o.seed ?? (Date.now() % 2 ** 31);
  const kills = o.kills ?? 4;
  const maxDelayMs = o.maxDelayMs ?? 4000;
  const convergeMs = o.convergeMs ?? 90_000;
  const log = o.log ?? ((s) => console.log(s));
  const rand = prng(seed);
  log(`crash driver (engine commits): seed ${seed}, ${kills} kills`);

  const tmp = mkdtempSync(join(tmpdir(), 'keelson-crash-commits-'));
  const remote = join(tmp, 'ops.git');
  const work = join(tmp, 'work');
  const state = join(tmp, 'state');
  const token = `kls_crash_driver_commits_${seed}_0123456789`;
  const apiPort = await freePort();
  const api = `http://127.0.0.1:${apiPort}`;
  const auth = { authorization: `Bearer ${token}` };
  const ports = { au: await freePort(), rb: await freePort() };

  const appYaml = (name, policy) => `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: ${name} }
spec:
  version: "1.0.0"
  artifact: { path: "../releases/${name}-{version}" }
  run: { command: ["node", "server.js"] }
  port: ${ports[name]}
  readiness: { http: { path: /healthz }, periodSeconds: 1 }
  terminationGracePeriodSeconds: 5
${policy ? '  updatePolicy:\n    semver: ">=1.0.0"\n    source: { directory: ../releases }\n' : ''}`;
  write(work, {
    'apps/au.yaml': appYaml('au', true),
    'apps/rb.yaml': appYaml('rb', false),
    'environments/dev.yaml': `apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata: { name: dev }
spec:
  apps:
    au: { version: "1.0.0", autoUpdate: true }
    rb: { version: "1.0.0" }
`,
    'releases/au-1.0.0/server.js': server('au 1.0.0'),
    'releases/rb-1.0.0/server.js': server('rb 1.0.0'),
  });
  git(work, 'init', '-q', '-b', 'main');
  git(work, 'config', 'gc.auto', '0');
  git(work, 'add', '-A');
  git(work, 'commit', '-q', '-m', 'initial');
  git(tmp, 'init', '-q', '--bare', '-b', 'main', remote);
  git(remote, 'config', 'gc.auto', '0');
  git(work, 'remote', 'add', 'origin', remote);
  git(work, 'push', '-q', 'origin', 'main');

  /** The driver's own commit (a release, a version bump), rebased onto what the engine pushed meanwhile. */
  const push = (files, message) => {
    git(work, 'pull', '-q', '--rebase', 'origin', 'main');
    write(work, files);
    git(work, 'add', '-A');
    git(work, 'commit', '-q', '-m', message);
    for (let i = 0; ; i++) {
      try {
        git(work, 'push', '-q', 'origin', 'main');
        return;
      } catch (err) {
        if (i >= 5) throw err;
        git(work, 'pull', '-q', '--rebase', 'origin', 'main');
      }
    }
  };
  const head = () => git(remote, 'rev-parse', 'main');
  const declared = (rev) => parse(git(remote, 'show', `${rev}:environments/dev.yaml`)).spec.apps;

  const engine = engineProcess({
    args: ['--repo', remote, '--state-dir', state, '--listen', `127.0.0.1:${apiPort}`, '--poll', '1s', '--auto-update-interval', '1s'],
    env: { KEELSON_TOKEN_OPERATOR: token },
    logDir: tmp,
    withGit: true,
  });
  const get = async (path) => {
    const res = await fetch(`${api}${path}`, { headers: auth });
    if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    return res.json();
  };
  const rollback = async () => {
    const res = await fetch(`${api}/api/v1/environments/dev/apps/rb/rollback`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{"reason":"crash driver"}' });
    return { status: res.status, body: await res.text() };
  };
  let newestAu = '1.0.0';
  /** The engine deployed the remote head, the automation committed the newest release, every app at HEAD's version. */
  const converged = async () => {
    const st = await get('/api/v1/status').catch(() => undefined);
    const env = st?.environments?.[0];
    const h = head();
    if (!env || st.revision !== h) return false;
    const want = declared(h);
    if (want.au.version !== newestAu) return false;
    for (const [name, entry] of Object.entries(want)) {
      const s = env.apps.find((x) => x.name === name);
      if (!s || s.sync !== 'Synced' || s.health !== 'Healthy' || s.version !== entry.version) return false;
    }
    return { env, head: h };
  };

  const result = { seed, kills, survived: 0, byKind: { auto: 0, rollback: 0 }, pushedBeforeKill: 0, divergences: [], convergenceMs: [], tmp };
  const diverged = (kill, check, detail) => {
    result.divergences.push({ kill, check, detail });
    log(`  DIVERGENCE after kill ${kill}: ${check}: ${detail}`);
  };
  let completedSyncs = new Set();
  const bumps = new Map();

  const check = async (k) => {
    const locks = lockFiles(remote);
    if (locks.length) diverged(k, 'no stale lock in the ops repository', locks.join(', '));
    try {
      execFileSync('git', ['fsck', '--full', '--no-progress', '--no-dangling'], { cwd: remote, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      diverged(k, 'the ops repository is whole', `git fsck: ${String(err.stderr ?? err.message).trim().split('\n').slice(0, 3).join('; ')}`);
    }
    const commits = git(remote, 'log', '--format=%H%x00%an%x00%B%x1e', 'main')
      .split('\x1e')
      .map((c) => c.trim())
      .filter(Boolean)
      .map((c) => c.split('\0'));
    const subjects = new Map();
    for (const [sha, author, body] of commits) {
      if (author !== 'Keelson') continue;
      const subject = body.split('\n')[0];
      const trailer = subject.startsWith('Roll back') ? 'Keelson-Rollback:' : 'Keelson-Actor:';
      if (!body.includes(trailer)) diverged(k, 'every engine commit whole', `${sha.slice(0, 7)} "${subject}" has no ${trailer} trailer`);
      if (subject.startsWith('Update ')) subjects.set(subject, (subjects.get(subject) ?? 0) + 1);
    }
    for (const [subject, n] of subjects) if (n > 1 && bumps.get(subject) !== n) diverged(k, 'no commit made twice', `"${subject}" committed ${n} times`), bumps.set(subject, n);
    let db;
    try {
      db = new Database(join(state, 'keelson.db'), { readonly: true, fileMustExist: true });
      const integrity = db.pragma('integrity_check', { simple: true });
      if (integrity !== 'ok') diverged(k, 'history intact', `integrity_check: ${integrity}`);
    } catch (err) {
      diverged(k, 'history intact', `the store does not open: ${err.message}`);
    } finally {
      db?.close();
    }
    const syncs = (await get('/api/v1/history?env=dev&limit=1000')).syncs;
    const ids = new Set(syncs.map((s) => s.id));
    const lost = [...completedSyncs].filter((id) => !ids.has(id));
    if (lost.length) diverged(k, 'history intact', `completed syncs ${lost.join(', ')} no longer listed`);
    else completedSyncs = ids;
  };

  const describeNow = async () => {
    const st = await get('/api/v1/status').catch((err) => ({ error: err.message }));
    const env = st?.environments?.[0];
    const h = head();
    const want = declared(h);
    const apps = (env?.apps ?? []).map((s) => `${s.name} ${s.sync}/${s.health} at ${s.version} (HEAD: ${want[s.name]?.version})`);
    const failed = await get('/api/v1/environments/dev/apps/au/events').then(
      (r) => (r.events ?? []).filter((e) => e.type === 'automation.failed').map((e) => e.message ?? JSON.stringify(e)).slice(0, 2),
      () => [],
    );
    return `engine at ${st?.revision?.slice(0, 7)}, HEAD ${h.slice(0, 7)} (newest release au ${newestAu}); ${apps.join('; ')}${failed.length ? `; automation failed: ${failed.join(' | ')}` : ''}${st?.error ? `; ${st.error}` : ''}`;
  };

  /**
   * Where the kill lands: after a random delay of at most `ms`, or (`atGit`) as soon as the engine runs a git command
   * of its commit (`worktree add`, `commit`, `push`; its child processes are polled), at most 3 × `ms` from now.
   */
  const killPoint = async (ms, atGit) => {
    if (!atGit) {
      const delay = Math.floor(rand() * ms);
      await sleep(delay);
      return `${delay} ms after`;
    }
    const t0 = Date.now();
    // Not `fetch`: the poll fetches every second, so a kill there says little about the commit.
    const wanted = ['worktree add', 'commit', 'push', 'receive-pack'].filter(() => rand() < 0.5);
    if (!wanted.length) wanted.push('push');
    while (Date.now() - t0 < ms * 3) {
      const running = gitProcesses(engine.child.pid).map((p) => gitCommand(p.argv)).find((c) => c && wanted.includes(c));
      if (running) return `during \`git ${running}\`, ${Date.now() - t0} ms after`;
      await sleep(1);
    }
    return `${Date.now() - t0} ms (no git command of ${wanted.join('/')} seen) after`;
  };
  let rb = 1;
  /** rb moves on to its next release, deployed: a rollback then has an earlier healthy revision to go back to. */
  const rbMovesOn = async () => {
    rb++;
    const cur = declared(head());
    push(
      {
        [`releases/rb-1.0.${rb}/server.js`]: server(`rb 1.0.${rb}`),
        'environments/dev.yaml': `apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: dev }\nspec:\n  apps:\n    au: { version: "${cur.au.version}", autoUpdate: true }\n    rb: { version: "1.0.${rb}" }\n`,
      },
      `rb 1.0.${rb}`,
    );
    await waitFor(`rb 1.0.${rb} deployed`, async () => {
      const env = (await get('/api/v1/status').catch(() => undefined))?.environments?.[0];
      const s = env?.apps.find((x) => x.name === 'rb');
      return s?.version === `1.0.${rb}` && s.sync === 'Synced' && s.health === 'Healthy';
    }, { timeoutMs: convergeMs, intervalMs: 200 });
  };
  let release = 0;
  try {
    engine.start();
    await waitFor('the first deploy', converged, { timeoutMs: convergeMs, intervalMs: 200 });
    for (let k = 1; k <= kills; k++) {
      const kind = k === 1 || rand() < 0.5 ? 'auto' : 'rollback';
      let what;
      let answer;
      if (kind === 'auto') {
        // A new release: the automation plans, commits and pushes the bump; the kill lands somewhere in that.
        newestAu = `1.0.${++release}`;
        push({ [`releases/au-${newestAu}/server.js`]: server(`au ${newestAu}`) }, `release au ${newestAu}`);
        const at = await killPoint(maxDelayMs, rand() < 0.5);
        what = `release au ${newestAu}, SIGKILL ${at} the push`;
      } else {
        // rb moves on; once it runs, a rollback through the API, killed while the engine commits it.
        try {
          await rbMovesOn();
        } catch (err) {
          diverged(k, 'converges to HEAD', `${err.message.split(';')[0]}; ${await describeNow()}`);
          if (!o.keepGoing) break;
          continue;
        }
        answer = rollback().catch((err) => ({ status: 0, body: err.cause?.code ?? err.message }));
        const at = await killPoint(maxDelayMs / 2, rand() < 0.5);
        what = `rb → 1.0.${rb}, then a rollback through the API, SIGKILL ${at} the request`;
      }
      await engine.kill();
      result.byKind[kind]++;
      if (answer) {
        const a = await answer;
        if (a.status !== 0 && a.status !== 200) diverged(k, 'rollback answered', `${a.status} ${a.body.slice(0, 200)}`);
        what += a.status === 200 ? ' (answered before the kill)' : '';
      }
      const landed = kind === 'auto' ? declared(head()).au.version === newestAu : git(remote, 'log', '-1', '--format=%s', 'main').startsWith('Roll back');
      result.pushedBeforeKill += landed ? 1 : 0;
      what += landed ? '; the commit was pushed' : '; nothing pushed yet';
      log(`kill ${k} (${kind}): ${what}`);
      // Now and then a release lands while the engine is down.
      if (rand() < 0.3) {
        newestAu = `1.0.${++release}`;
        push({ [`releases/au-${newestAu}/server.js`]: server(`au ${newestAu}`) }, `release au ${newestAu}`);
        log(`  while down: release au ${newestAu}`);
      }
      const t0 = Date.now();
      engine.start();
      try {
        await waitFor(`convergence after kill ${k}`, converged, { timeoutMs: convergeMs, intervalMs: 200 });
      } catch (err) {
        diverged(k, 'converges to HEAD', `${err.message.split(';')[0]}; ${await describeNow()}`);
        await check(k);
        if (!o.keepGoing) break;
        continue;
      }
      result.convergenceMs.push(Date.now() - t0);
      result.survived++;
      await check(k);
      log(`  converged in ${Date.now() - t0} ms at ${head().slice(0, 7)}`);
    }
    if (result.survived === kills) {
      // The next engine commit after the last kill goes through (rb first gets a revision to go back to, if every
      // kill landed during version automation).
      if (rb === 1) await rbMovesOn().catch((err) => diverged(kills, 'converges to HEAD', err.message.split(';')[0]));
      const a = await rollback();
      if (a.status !== 200) diverged(kills, 'the next commit goes through', `a rollback after the last restart: ${a.status} ${a.body.slice(0, 200)}`);
      else log('  a rollback after the last restart: committed');
    }
  } finally {
    await engine.kill();
    try {
      execFileSync(process.execPath, [bin, 'down', '--state-dir', state], { stdio: 'ignore', timeout: 60_000 });
    } catch {
      /* nothing ran */
    }
    if (!o.keepTmp && !process.env.KEELSON_KEEP_TMP) rmSync(tmp, { recursive: true, force: true });
  }
  log(`crash driver, engine commits (seed ${seed}): ${result.survived}/${kills} kills survived (${result.byKind.auto} during automation, ${result.byKind.rollback} during API rollbacks), ${result.divergences.length} divergences`);
  return result;
}
