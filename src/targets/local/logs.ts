/**
 * Per-replica log files of the local target. Apps write straight into the file through a descriptor they inherit
 * (so logs outlive the engine), hence rotation is copy-truncate: `path` → `path.1` → … → `path.<keep>`.
 *
 *   const fd = openLogFd(join(logDir, 'web-0.log'));   // pass as stdout/stderr to spawn, then close it
 *   await rotateIfNeeded(file);                         // periodically, from one place per file
 *   followLog(file, (lines) => send(lines), signal);
 *
 * Lines written in the instant between the copy and the truncate of a rotation are lost (inherent to
 * copy-truncate).
 */
import { closeSync, mkdirSync, openSync, statSync, constants as fsConstants, watch, type FSWatcher } from 'node:fs';
import { open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

export interface RotateOptions {
  /** Rotate once the file reaches this size; default 10 MiB. */
  maxBytes?: number;
  /** Rotated files kept (`path.1` newest … `path.<keep>` oldest); default 5. */
  keep?: number;
}

export function defaultRotateOptions(): Required<RotateOptions> {
  return { maxBytes: 10 * 1024 * 1024, keep: 5 };
}

const chunkSize = 64 * 1024;
const pollMs = 250;
// A `.rotating` copy older than this is a leftover of a crash, not a rotation in progress.
const staleRotationMs = 10_000;
const maxReadPerStep = 4 * 1024 * 1024;
// A line longer than this is emitted in pieces rather than buffered without bound.
const maxLineBytes = 1024 * 1024;

/** An append-only descriptor for `file` (mode 0640, parent directories created). The caller closes it. */
export function openLogFd(file: string): number {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o750 });
  return openSync(file, fsConstants.O_APPEND | fsConstants.O_CREAT | fsConstants.O_WRONLY, 0o640);
}

/**
 * Rotates `file` if it has reached `maxBytes`: its content is copied to `file.1` (older copies shift up, the
 * oldest is dropped) and it is truncated to 0, so writers holding an O_APPEND descriptor carry on at the new end.
 * Returns whether it rotated. Call it for a given file from one place at a time.
 */
export async function rotateIfNeeded(file: string, opts: RotateOptions = {}): Promise<boolean> {
  const { maxBytes, keep } = { ...defaultRotateOptions(), ...opts };
  const st = await stat(file).catch(() => undefined);
  if (!st?.isFile() || st.size < maxBytes) return false;

  const tmp = `${file}.rotating`;
  const src = await open(file, 'r+');
  try {
    if (keep > 0) {
      const dst = await open(tmp, 'w', 0o640);
      try {
        await copyToEnd(src, dst);
      } finally {
        await dst.close();
      }
    }
    // Truncate right after reading to EOF to keep the window for lost lines small.
    await src.truncate(0);
  } finally {
    await src.close();
  }
  if (keep === 0) return true;
  await rm(`${file}.${keep}`, { force: true });
  for (let i = keep - 1; i >= 1; i--) {
    await rename(`${file}.${i}`, `${file}.${i + 1}`).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }
  // Renamed into place after the truncate: followers wait while `.rotating` exists and treat a new `file.1` as a
  // completed rotation.
  await rename(tmp, `${file}.1`);
  return true;
}

async function copyToEnd(src: FileHandle, dst: FileHandle): Promise<void> {
  const buf = Buffer.allocUnsafe(chunkSize);
  for (let pos = 0; ; ) {
    const { bytesRead } = await src.read(buf, 0, buf.length, pos);
    if (bytesRead === 0) return;
    await dst.write(buf, 0, bytesRead);
    pos += bytesRead;
  }
}

/** The last `n` lines of `file`, continuing into `file.1` if the current file has fewer. Missing files are empty. */
export async function tailLines(file: string, n: number): Promise<string[]> {
  if (n <= 0) return [];
  const current = await tailOf(file, n);
  if (current.length >= n) return current;
  const previous = await tailOf(`${file}.1`, n - current.length);
  return [...previous, ...current];
}

/** Reads backwards in chunks until `n` complete lines are known. */
async function tailOf(file: string, n: number): Promise<string[]> {
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  try {
    const { size } = await fh.stat();
    const chunks: Buffer[] = [];
    let newlines = 0;
    let pos = size;
    // A trailing newline ends the last line rather than starting an empty one: n lines need n+1 newlines
    // (or the start of the file) before them to be complete.
    while (pos > 0 && newlines <= n) {
      const len = Math.min(chunkSize, pos);
      pos -= len;
      const buf = Buffer.allocUnsafe(len);
      const { bytesRead } = await fh.read(buf, 0, len, pos);
      const chunk = buf.subarray(0, bytesRead);
      chunks.unshift(chunk);
      for (const b of chunk) if (b === 0x0a) newlines++;
    }
    const lines = splitLines(Buffer.concat(chunks));
    if (lines.length && lines[lines.length - 1] === '') lines.pop();
    // Without reaching the file start, the first piece may be the tail of a longer line.
    if (pos > 0) lines.shift();
    return lines.slice(-n);
  } finally {
    await fh.close();
  }
}

function splitLines(buf: Buffer): string[] {
  return buf.toString('utf8').split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
}

/**
 * Calls `onLines` with complete lines appended to `file` from now on, until `signal` aborts. Uses fs.watch with a
 * 250 ms poll as fallback. Follows rotation by rotateIfNeeded: the unread end of the old content is read from the
 * new `file.1` (or `file.k … file.1` after several rotations between looks), so lines come once and in order.
 * The file need not exist yet. Exceptions thrown by `onLines` are ignored.
 */
export function followLog(file: string, onLines: (lines: string[]) => void, signal: AbortSignal): void {
  if (signal.aborted) return;
  // "From now on": the starting point is taken synchronously, before the caller appends anything.
  const initial = statOrUndefined(file);
  let offset = initial?.size ?? 0;
  let ino = initial?.ino;
  // Inodes of the rotated files (file.1, file.2, …) already accounted for.
  let knownRotated = new Set(scanRotatedSync(file));
  let partial: Buffer = Buffer.alloc(0);
  let running = false;
  let again = false;

  const emit = (buf: Buffer): void => {
    if (buf.length === 0 || signal.aborted) return;
    let data = partial.length ? Buffer.concat([partial, buf]) : buf;
    const lastNl = data.lastIndexOf(0x0a);
    let lines: string[] = [];
    if (lastNl >= 0) {
      lines = splitLines(data.subarray(0, lastNl));
      data = data.subarray(lastNl + 1);
    }
    if (data.length > maxLineBytes) {
      lines.push(data.toString('utf8'));
      data = Buffer.alloc(0);
    }
    partial = Buffer.from(data);
    if (lines.length === 0) return;
    try {
      onLines(lines);
    } catch {
      // The follower must survive its consumer.
    }
  };

  const step = async (): Promise<void> => {
    // A rotation truncates `file` before its copy appears as `file.1`; while it is under way the current file
    // cannot be placed, so wait. Comparing before and after each read catches a rotation that overlapped it.
    const before = await rotationState(file);
    if (before.busy) return;
    if (before.head !== undefined && !knownRotated.has(before.head)) {
      const all = await scanRotated(file);
      let from = offset;
      for (const r of all.filter((x) => !knownRotated.has(x.ino)).reverse()) {
        emit(await readRange(r.path, from, Infinity));
        from = 0;
      }
      knownRotated = new Set(all.map((r) => r.ino));
      offset = 0;
    }
    const st = await stat(file).catch(() => undefined);
    if (!st) return;
    // Replaced, or truncated by something other than rotateIfNeeded: start over.
    const from = (ino !== undefined && st.ino !== ino) || st.size < offset ? 0 : offset;
    if (st.size === from) return;
    const data = await readRange(file, from, maxReadPerStep);
    const after = await rotationState(file);
    if (after.busy || after.head !== before.head) return; // the next step reads it from the rotated copy
    ino = st.ino;
    offset = from + data.length;
    emit(data);
    if (data.length === maxReadPerStep) again = true;
  };

  const tick = (): void => {
    if (signal.aborted) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    step()
      .catch(() => {
        // Transient I/O errors: the next tick retries.
      })
      .finally(() => {
        running = false;
        if (again) {
          again = false;
          tick();
        }
      });
  };

  let watcher: FSWatcher | undefined;
  try {
    const names = new Set([path.basename(file), `${path.basename(file)}.1`, `${path.basename(file)}.rotating`]);
    watcher = watch(path.dirname(file), { persistent: false }, (_event, name) => {
      if (!name || names.has(String(name))) tick();
    });
    watcher.on('error', () => {
      watcher?.close();
      watcher = undefined;
    });
  } catch {
    // Directory missing or watch unsupported: polling alone.
  }
  const timer = setInterval(tick, pollMs);
  signal.addEventListener(
    'abort',
    () => {
      clearInterval(timer);
      watcher?.close();
    },
    { once: true },
  );
  tick();
}

/** `head`: inode of `file.1`; `busy`: a rotation is between its truncate and its rename into `file.1`. */
async function rotationState(file: string): Promise<{ head?: number; busy: boolean }> {
  const [head, tmp] = await Promise.all([
    stat(`${file}.1`).catch(() => undefined),
    stat(`${file}.rotating`).catch(() => undefined),
  ]);
  return { head: head?.ino, busy: tmp !== undefined && Date.now() - tmp.mtimeMs < staleRotationMs };
}

async function readRange(file: string, from: number, max: number): Promise<Buffer> {
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch {
    return Buffer.alloc(0);
  }
  try {
    const chunks: Buffer[] = [];
    let pos = from;
    while (pos - from < max) {
      const buf = Buffer.allocUnsafe(Math.min(chunkSize, max - (pos - from)));
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      chunks.push(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
    return Buffer.concat(chunks);
  } finally {
    await fh.close();
  }
}

const maxRotatedScan = 20;

async function scanRotated(file: string): Promise<{ path: string; ino: number }[]> {
  const out: { path: string; ino: number }[] = [];
  for (let k = 1; k <= maxRotatedScan; k++) {
    const st = await stat(`${file}.${k}`).catch(() => undefined);
    if (!st) break;
    out.push({ path: `${file}.${k}`, ino: st.ino });
  }
  return out;
}

function scanRotatedSync(file: string): number[] {
  const out: number[] = [];
  for (let k = 1; k <= maxRotatedScan; k++) {
    const st = statOrUndefined(`${file}.${k}`);
    if (!st) break;
    out.push(st.ino);
  }
  return out;
}

function statOrUndefined(p: string): { size: number; ino: number } | undefined {
  try {
    return statSync(p);
  } catch {
    return undefined;
  }
}

/** Closes a descriptor from openLogFd, ignoring one that is already closed. */
export function closeLogFd(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // EBADF: already closed
  }
}
