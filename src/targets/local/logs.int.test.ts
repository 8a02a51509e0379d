import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, closeSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import { followLog, openLogFd, rotateIfNeeded } from './logs.js';

const cleanups: string[] = [];
afterEach(async () => {
  for (const d of cleanups.splice(0)) await rm(d, { recursive: true, force: true });
});

async function testdir(): Promise<string> {
  const d = await mkdtemp(path.join(tmpdir(), 'keelson-logs-int-'));
  cleanups.push(d);
  return d;
}

// Copy-truncate exactly as rotateIfNeeded does it (copy, truncate, shift, rename into file.1), `rounds` times in a
// row. Run synchronously from the test so no follower tick can happen between the rotations.
const rotator = `
const fs = require('node:fs');
const [file, rounds] = [process.argv[1], Number(process.argv[2])];
for (let r = 0; r < rounds; r++) {
  fs.appendFileSync(file, 'burst ' + r + '\\n');
  fs.copyFileSync(file, file + '.rotating');
  fs.truncateSync(file, 0);
  for (let i = 4; i >= 1; i--) if (fs.existsSync(file + '.' + i)) fs.renameSync(file + '.' + i, file + '.' + (i + 1));
  fs.renameSync(file + '.rotating', file + '.1');
}
`;

describe('logs with real processes', () => {
  it('a child writing through an inherited descriptor carries on after rotation', async () => {
    const file = path.join(await testdir(), 'web-0.log');
    const fd = openLogFd(file);
    onTestFinished(() => closeSync(fd));
    // Writes "n\n" lines until stdin closes, then "done".
    const child = spawn(
      process.execPath,
      [
        '-e',
        `let n = 0; const t = setInterval(() => process.stdout.write((n++) + '\\n'), 1);
         process.stdin.on('end', () => { clearInterval(t); process.stdout.write('done\\n'); });
         process.stdin.resume();`,
      ],
      { stdio: ['pipe', fd, fd] },
    );
    onTestFinished(() => {
      child.kill('SIGKILL');
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));

    let rotations = 0;
    while (rotations < 3) {
      if (await rotateIfNeeded(file, { maxBytes: 200 })) rotations++;
      else await new Promise((r) => setTimeout(r, 5));
    }
    child.stdin!.end();
    expect(await exited).toBe(0);

    const current = await readFile(file, 'utf8');
    expect(current).not.toContain('\0'); // O_APPEND: no hole where the old end was
    expect(current.endsWith('done\n')).toBe(true);
    const rotated = await readFile(`${file}.1`, 'utf8');
    const numbers = (s: string) => s.split('\n').filter((l) => /^\d+$/.test(l)).map(Number);
    // Rotated content precedes current content.
    expect(Math.max(...numbers(rotated))).toBeLessThan(Math.min(...numbers(current).concat(Infinity)));
  });

  it('follow reads every rotated file after several rotations between looks', async () => {
    const file = path.join(await testdir(), 'app.log');
    appendFileSync(file, 'before follow\n');
    const seen: string[] = [];
    const ac = new AbortController();
    onTestFinished(() => ac.abort());
    followLog(file, (l) => seen.push(...l), ac.signal);

    appendFileSync(file, 'first\n');
    execFileSync(process.execPath, ['-e', rotator, file, '3']);
    appendFileSync(file, 'after\n');
    await vi.waitFor(() => expect(seen).toEqual(['first', 'burst 0', 'burst 1', 'burst 2', 'after']), {
      timeout: 10_000,
      interval: 20,
    });
  });
});
