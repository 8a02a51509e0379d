/**
 * What the crash drivers share (test/crash-driver*.mjs): a seeded PRNG, a `keelson up` child process that can be
 * killed with SIGKILL (alone, or with the git commands it runs, as when its container dies), its logs kept per start,
 * and what a killed git leaves behind (lock files).
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
export const bin = join(root, 'bin', 'keelson');

/** mulberry32: a small seeded PRNG, [0, 1). */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `keelson up ARGS` restarted at will: `start()` spawns it (its output kept in `<logDir>/keelson-<n>.log`), `kill()`
 * SIGKILLs it — with `withGit`, together with the git commands it runs (each in a process group of its own), as
 * when the container or machine dies; the apps and the proxy it supervises survive either way.
 */
export function engineProcess({ args, env = {}, logDir, withGit = false }) {
  let child;
  let starts = 0;
  return {
    get child() {
      return child;
    },
    get starts() {
      return starts;
    },
    start() {
      const c = spawn(process.execPath, [bin, 'up', ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { KEELSON_LOG_LEVEL: 'info', KEELSON_ALLOW_ROOT_APPS: 'true', ...process.env, ...env },
      });
      const chunks = [];
      c.stdout.on('data', (b) => chunks.push(b));
      c.stderr.on('data', (b) => chunks.push(b));
      const file = join(logDir, `keelson-${starts++}.log`);
      c.on('exit', () => writeFileSync(file, Buffer.concat(chunks)));
      child = c;
      return c;
    },
    kill() {
      return new Promise((res) => {
        const c = child;
        if (!c || c.exitCode !== null || c.signalCode !== null) return res();
        c.once('exit', () => res());
        const git = withGit ? gitProcesses(c.pid) : [];
        c.kill('SIGKILL');
        for (const p of git) {
          try {
            process.kill(p.pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
      });
    },
  };
}

/** Every `*.lock` file under `dir` (relative paths): what a git killed mid-command leaves. */
export function lockFiles(dir) {
  const out = [];
  const walk = (d, rel) => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.isDirectory()) {
        if (e.name !== 'objects') walk(join(d, e.name), rel ? `${rel}/${e.name}` : e.name);
      } else if (e.name.endsWith('.lock')) out.push(rel ? `${rel}/${e.name}` : e.name);
    }
  };
  walk(dir, '');
  return out;
}

/** The live processes below `pid` (children, their children…): `[{pid, ppid, argv}]`, parents before children. */
export function descendants(pid) {
  const all = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z') continue;
      all.push({ pid: Number(name), ppid: Number(fields[1]), argv: readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').filter(Boolean) });
    } catch {
      /* gone */
    }
  }
  const out = [];
  const below = new Set([pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of all) {
      if (below.has(p.ppid) && !below.has(p.pid)) {
        below.add(p.pid);
        out.push(p);
        grew = true;
      }
    }
  }
  return out;
}

/** The engine's git processes and theirs (git spawns each command in a process group of its own). */
export function gitProcesses(pid) {
  const tree = descendants(pid);
  const git = new Set(tree.filter((p) => gitCommand(p.argv)).map((p) => p.pid));
  for (const p of tree) if (git.has(p.ppid)) git.add(p.pid);
  return tree.filter((p) => git.has(p.pid));
}

/** The git subcommand an argv runs (`git -c k=v commit …` → `commit`; `git-receive-pack …` → `receive-pack`), or undefined. */
export function gitCommand(argv) {
  const exe = (argv[0] ?? '').split('/').pop();
  if (exe.startsWith('git-')) return exe.slice(4);
  if (exe !== 'git') return undefined;
  for (let i = 1; i < argv.length; i++) {
    if (argv[i] === '-c' || argv[i] === '-C') i++;
    else if (!argv[i].startsWith('-')) return argv[i] === 'worktree' ? `worktree ${argv[i + 1] ?? ''}`.trim() : argv[i];
  }
  return undefined;
}
