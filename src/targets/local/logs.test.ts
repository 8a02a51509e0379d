import { appendFileSync, closeSync, writeSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import { followLog, openLogFd, rotateIfNeeded, tailLines } from './logs.js';

const cleanups: string[] = [];
afterEach(async () => {
  for (const d of cleanups.splice(0)) await rm(d, { recursive: true, force: true });
});

async function testdir(): Promise<string> {
  const d = await mkdtemp(path.join(tmpdir(), 'keelson-logs-'));
  cleanups.push(d);
  return d;
}

function openForTest(file: string): number {
  const fd = openLogFd(file);
  onTestFinished(() => closeSync(fd));
  return fd;
}

function follow(file: string): string[] {
  const seen: string[] = [];
  const ac = new AbortController();
  onTestFinished(() => ac.abort());
  followLog(file, (lines) => seen.push(...lines), ac.signal);
  return seen;
}

const lines = (from: number, to: number, prefix = 'line'): string[] =>
  Array.from({ length: to - from }, (_, i) => `${prefix} ${from + i}`);

describe('openLogFd', () => {
  it('creates parent directories and an append-only 0640 file', async () => {
    const file = path.join(await testdir(), 'web', 'replica-0.log');
    const fd = openForTest(file);
    writeSync(fd, 'a\n');
    writeSync(fd, 'b\n', 0); // position is ignored: O_APPEND
    expect(await readFile(file, 'utf8')).toBe('a\nb\n');
    expect((await stat(file)).mode & 0o777).toBe(0o640);
  });
});

describe('rotateIfNeeded', () => {
  it('does nothing below maxBytes or for a missing file', async () => {
    const file = path.join(await testdir(), 'app.log');
    expect(await rotateIfNeeded(file)).toBe(false);
    await writeFile(file, 'small\n');
    expect(await rotateIfNeeded(file, { maxBytes: 100 })).toBe(false);
    expect(await readdir(path.dirname(file))).toEqual(['app.log']);
  });

  it('keeps five rotated files, newest first, and drops the oldest', async () => {
    const dir = await testdir();
    const file = path.join(dir, 'app.log');
    for (let i = 1; i <= 7; i++) {
      await writeFile(file, `generation ${i}\n`);
      expect(await rotateIfNeeded(file, { maxBytes: 1 })).toBe(true);
    }
    expect((await readdir(dir)).sort()).toEqual(['app.log', 'app.log.1', 'app.log.2', 'app.log.3', 'app.log.4', 'app.log.5']);
    expect(await readFile(file, 'utf8')).toBe('');
    for (let k = 1; k <= 5; k++) expect(await readFile(`${file}.${k}`, 'utf8')).toBe(`generation ${8 - k}\n`);
  });

  it('honours keep', async () => {
    const dir = await testdir();
    const file = path.join(dir, 'app.log');
    for (let i = 1; i <= 3; i++) {
      await writeFile(file, `g${i}\n`);
      await rotateIfNeeded(file, { maxBytes: 1, keep: 2 });
    }
    expect((await readdir(dir)).sort()).toEqual(['app.log', 'app.log.1', 'app.log.2']);
    expect(await readFile(`${file}.2`, 'utf8')).toBe('g2\n');
  });

  it('lets a writer holding the descriptor continue at the start of the truncated file', async () => {
    const file = path.join(await testdir(), 'app.log');
    const fd = openForTest(file);
    writeSync(fd, 'before rotation\n'.repeat(10));
    expect(await rotateIfNeeded(file, { maxBytes: 64 })).toBe(true);
    writeSync(fd, 'after rotation\n');
    expect(await readFile(file, 'utf8')).toBe('after rotation\n'); // no hole of NULs before it
    expect(await readFile(`${file}.1`, 'utf8')).toBe('before rotation\n'.repeat(10));
  });
});

describe('tailLines', () => {
  it('returns the last n lines, with or without a final newline', async () => {
    const file = path.join(await testdir(), 'app.log');
    await writeFile(file, lines(0, 10).join('\n') + '\n');
    expect(await tailLines(file, 3)).toEqual(lines(7, 10));
    await writeFile(file, 'a\r\nb\nc');
    expect(await tailLines(file, 2)).toEqual(['b', 'c']);
    expect(await tailLines(file, 0)).toEqual([]);
  });

  it('reads large files from the end in chunks', async () => {
    const file = path.join(await testdir(), 'app.log');
    const all = lines(0, 50_000, 'a fairly long log line number');
    await writeFile(file, all.join('\n') + '\n');
    expect((await stat(file)).size).toBeGreaterThan(1024 * 1024);
    expect(await tailLines(file, 5000)).toEqual(all.slice(-5000));
  });

  it('continues into the rotated file when the current one is short', async () => {
    const file = path.join(await testdir(), 'app.log');
    await writeFile(`${file}.1`, lines(0, 5).join('\n') + '\n');
    await writeFile(`${file}.2`, 'older, never read\n');
    await writeFile(file, lines(5, 7).join('\n') + '\n');
    expect(await tailLines(file, 4)).toEqual(lines(3, 7));
    expect(await tailLines(file, 100)).toEqual(lines(0, 7));
    expect(await tailLines(path.join(path.dirname(file), 'missing.log'), 3)).toEqual([]);
  });
});

describe('followLog', () => {
  const wait = { timeout: 10_000, interval: 20 };

  it('emits lines appended after it starts, holding back a partial line', async () => {
    const file = path.join(await testdir(), 'app.log');
    await writeFile(file, 'old line\n');
    const seen = follow(file);
    appendFileSync(file, 'one\ntwo\nthr');
    await vi.waitFor(() => expect(seen).toEqual(['one', 'two']), wait);
    appendFileSync(file, 'ee\n');
    await vi.waitFor(() => expect(seen).toEqual(['one', 'two', 'three']), wait);
  });

  it('waits for a file that does not exist yet', async () => {
    const file = path.join(await testdir(), 'later.log');
    const seen = follow(file);
    const fd = openForTest(file);
    writeSync(fd, 'hello\n');
    await vi.waitFor(() => expect(seen).toEqual(['hello']), wait);
  });

  it('sees every line across rotations, in order and once', async () => {
    const file = path.join(await testdir(), 'app.log');
    const fd = openForTest(file);
    const seen = follow(file);
    const expected: string[] = [];
    for (let round = 0; round < 4; round++) {
      const batch = lines(round * 20, round * 20 + 20);
      expected.push(...batch);
      writeSync(fd, batch.join('\n') + '\n');
      expect(await rotateIfNeeded(file, { maxBytes: 10 })).toBe(true);
    }
    const tail = lines(80, 83);
    expected.push(...tail);
    writeSync(fd, tail.join('\n') + '\n');
    await vi.waitFor(() => expect(seen).toEqual(expected), wait);
  });

  it('starts over after a truncation that is not a rotation', async () => {
    const file = path.join(await testdir(), 'app.log');
    await writeFile(file, 'x'.repeat(100) + '\n');
    const seen = follow(file);
    await truncate(file, 0);
    appendFileSync(file, 'fresh\n');
    await vi.waitFor(() => expect(seen).toEqual(['fresh']), wait);
  });

  it('stops when aborted', async () => {
    const file = path.join(await testdir(), 'app.log');
    const seen: string[] = [];
    const ac = new AbortController();
    followLog(file, (l) => seen.push(...l), ac.signal);
    appendFileSync(file, 'a\n');
    await vi.waitFor(() => expect(seen).toEqual(['a']), wait);
    ac.abort();
    appendFileSync(file, 'b\n');
    // A later follower sees b; the aborted one must not.
    const witness = follow(file);
    appendFileSync(file, 'c\n');
    await vi.waitFor(() => expect(witness).toEqual(['c']), wait);
    expect(seen).toEqual(['a']);
  });
});
