/**
 * Release artifacts of the local target: download an http(s) `.tar.gz` once into a cache keyed by its sha256,
 * and unpack it safely.
 *
 *   const file = await fetchArtifact({ url, sha256, cacheDir: join(stateDir, 'artifacts') });
 *   await unpackTarGz(file, tmpDir);
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar';
import { TerminalError, TransientError, errorMessage } from '../../core/errors.js';

export interface FetchArtifactOptions {
  url: string;
  /** Expected sha256 of the .tar.gz, 64 hex digits. */
  sha256: string;
  /** Cache directory; the artifact is kept as `<cacheDir>/<sha256>.tar.gz`. */
  cacheDir: string;
  signal?: AbortSignal;
  /** Largest download accepted; default 1 GiB. */
  maxBytes?: number;
  /** Whole-download deadline including redirects; default 10 minutes. */
  timeoutMs?: number;
  /** Default 5. */
  maxRedirects?: number;
}

export function defaultFetchArtifactOptions(): Required<Pick<FetchArtifactOptions, 'maxBytes' | 'timeoutMs' | 'maxRedirects'>> {
  return { maxBytes: 1024 ** 3, timeoutMs: 10 * 60_000, maxRedirects: 5 };
}

/**
 * A URL safe for messages and logs: without `user:pass@` and without the query string,
 * which often carries tokens (pre-signed URLs, `?private_token=`).
 */
export function redactUrl(url: string | URL): string {
  let u: URL;
  try {
    u = new URL(String(url));
  } catch {
    return '<invalid URL>';
  }
  return `${u.protocol}//${u.host}${u.pathname}${u.search ? '?<redacted>' : ''}`;
}

/** The artifact's path in the cache, downloading and verifying it first if it is not there yet. */
export async function fetchArtifact(opts: FetchArtifactOptions): Promise<string> {
  const o = { ...defaultFetchArtifactOptions(), ...opts };
  const safeUrl = redactUrl(o.url);
  const expected = o.sha256.toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(expected)) {
    throw new TerminalError(`artifact ${safeUrl}: sha256 must be 64 hex digits, got ${JSON.stringify(o.sha256)}`);
  }
  let url: URL;
  try {
    url = new URL(o.url);
  } catch {
    throw new TerminalError(`artifact URL ${JSON.stringify(safeUrl)} is not a valid URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TerminalError(`artifact ${safeUrl}: only http and https URLs are supported`);
  }

  await mkdir(o.cacheDir, { recursive: true });
  const cached = path.join(o.cacheDir, `${expected}.tar.gz`);
  if (await isFile(cached)) {
    // Re-verify: a cache entry that was corrupted or tampered with is downloaded again.
    if ((await sha256File(cached)) === expected) return cached;
    await rm(cached, { force: true });
  }

  const tmp = path.join(o.cacheDir, `.${expected}.${process.pid}.${randomBytes(4).toString('hex')}.part`);
  const timeout = AbortSignal.timeout(o.timeoutMs);
  const signal = o.signal ? AbortSignal.any([o.signal, timeout]) : timeout;
  try {
    const actual = await download(url, tmp, { ...o, safeUrl, signal });
    if (actual !== expected) {
      throw new TerminalError(
        `artifact ${safeUrl} sha256 mismatch: expected ${expected}, got ${actual}; ` +
          'update sha256 in the app spec if the artifact was rebuilt on purpose',
      );
    }
    await rename(tmp, cached);
    return cached;
  } catch (err) {
    await rm(tmp, { force: true });
    if (timeout.aborted && !o.signal?.aborted) {
      throw new TransientError(`artifact ${safeUrl} download timed out after ${o.timeoutMs} ms`, { cause: err });
    }
    throw err;
  }
}

interface DownloadOptions {
  safeUrl: string;
  signal: AbortSignal;
  maxBytes: number;
  maxRedirects: number;
}

/** Streams the body of `url` (following redirects) into `dest`; returns its sha256. */
async function download(start: URL, dest: string, o: DownloadOptions): Promise<string> {
  let url = start;
  const auth = start.username || start.password
    ? 'Basic ' + Buffer.from(`${decodeURIComponent(start.username)}:${decodeURIComponent(start.password)}`).toString('base64')
    : undefined;
  for (let redirects = 0; ; redirects++) {
    // Credentials go only to the origin they were given for.
    const headers: Record<string, string> = { 'user-agent': 'keelson', accept: '*/*' };
    if (auth && url.origin === start.origin) headers.authorization = auth;
    const res = await get(url, headers, o);
    const status = res.statusCode ?? 0;
    if (status >= 300 && status < 400 && res.headers.location) {
      res.resume();
      if (redirects >= o.maxRedirects) {
        throw new TerminalError(`artifact ${o.safeUrl}: more than ${o.maxRedirects} redirects`);
      }
      const next = new URL(res.headers.location, url);
      if (next.protocol !== 'http:' && next.protocol !== 'https:') {
        throw new TerminalError(`artifact ${o.safeUrl} redirected to unsupported protocol ${next.protocol}`);
      }
      if (url.protocol === 'https:' && next.protocol === 'http:') {
        throw new TerminalError(`artifact ${o.safeUrl} redirected from https to http; refusing to downgrade`);
      }
      url = next;
      continue;
    }
    if (status !== 200) {
      res.resume();
      const msg = `artifact ${o.safeUrl} download failed: HTTP ${status}`;
      // 408/429/5xx may pass; other answers will not change by retrying.
      if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
        throw new TerminalError(status === 404 ? `${msg}; does this version exist on the server?` : msg);
      }
      throw new TransientError(msg);
    }
    const length = Number(res.headers['content-length']);
    if (Number.isFinite(length) && length > o.maxBytes) {
      res.resume();
      throw new TerminalError(`artifact ${o.safeUrl} is ${length} bytes, over the ${o.maxBytes} byte limit`);
    }
    const hash = createHash('sha256');
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        size += chunk.length;
        if (size > o.maxBytes) {
          cb(new TerminalError(`artifact ${o.safeUrl} exceeds the ${o.maxBytes} byte limit`));
          return;
        }
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    try {
      await pipeline(res, meter, createWriteStream(dest, { flags: 'wx', mode: 0o644 }), { signal: o.signal });
    } catch (err) {
      if (err instanceof TerminalError || o.signal.aborted) throw err;
      throw new TransientError(`artifact ${o.safeUrl} download failed: ${errorMessage(err)}`, { cause: err });
    }
    return hash.digest('hex');
  }
}

function get(url: URL, headers: Record<string, string>, o: DownloadOptions): Promise<http.IncomingMessage> {
  const mod = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    // Credentials travel in the Authorization header only, never as part of the request URL.
    const target = new URL(url);
    target.username = '';
    target.password = '';
    const req = mod.get(target, { headers, signal: o.signal }, resolve);
    req.on('error', (err) => {
      if (o.signal.aborted) reject(err);
      else reject(new TransientError(`artifact ${o.safeUrl} download failed: ${errorMessage(err)}`, { cause: err }));
    });
  });
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

export interface UnpackOptions {
  /** Largest total size of the unpacked files; default 4 GiB (guards against decompression bombs). */
  maxBytes?: number;
}

const allowedTypes = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link']);

interface ListedEntry {
  path: string; // normalized: no leading './', no trailing '/'
  raw: string;
  type: string;
  linkpath?: string;
  size: number;
}

/**
 * Unpacks a `.tar.gz` into `destDir` (created if missing; it should be new or empty).
 *
 * The archive is listed and checked in full before anything is written: absolute paths, `..` segments, links
 * resolving outside `destDir`, entries below a symlink, hardlinks to anything but an earlier file, and
 * device/fifo entries are rejected with an error naming the entry. Ownership and setuid/setgid bits are not kept.
 *
 * If every entry lives under one top-level directory (`myapp-1.2.0/...`, as `git archive --prefix` or
 * `tar czf x.tgz myapp-1.2.0` produce), that directory is stripped so `destDir` holds its contents.
 */
export async function unpackTarGz(file: string, destDir: string, opts: UnpackOptions = {}): Promise<void> {
  const maxBytes = opts.maxBytes ?? 4 * 1024 ** 3;
  const entries: ListedEntry[] = [];
  try {
    await tar.t({
      file,
      strict: true,
      onReadEntry: (e) => {
        entries.push({
          path: normalizeEntryPath(e.path),
          raw: e.path,
          type: e.type,
          linkpath: e.linkpath,
          size: e.size ?? 0,
        });
      },
    });
  } catch (err) {
    throw new TerminalError(`artifact ${file} is not a readable .tar.gz: ${errorMessage(err)}`, { cause: err });
  }

  const fail = (e: ListedEntry, why: string): never => {
    throw new TerminalError(`artifact ${file}: entry ${JSON.stringify(e.raw)} ${why}; refusing to unpack`);
  };
  let total = 0;
  for (const e of entries) {
    if (!allowedTypes.has(e.type)) fail(e, `has unsupported type ${e.type}`);
    if (e.raw.startsWith('/') || /^[a-zA-Z]:/.test(e.raw)) fail(e, 'is an absolute path');
    if (e.raw.includes('\0')) fail(e, 'contains a NUL byte');
    if (e.raw.split('/').includes('..')) fail(e, 'escapes the destination with ".."');
    total += e.size;
    if (total > maxBytes) fail(e, `takes the unpacked size over the ${maxBytes} byte limit`);
  }
  const prefix = commonTopDir(entries);
  const rel = (p: string) => (prefix === undefined ? p : p === prefix ? '' : p.slice(prefix.length + 1));
  checkLinks(entries.map((e) => ({ ...e, path: rel(e.path), linkpath: e.type === 'Link' ? rel(normalizeEntryPath(e.linkpath ?? '')) : e.linkpath })), fail);

  await mkdir(destDir, { recursive: true });
  try {
    await tar.x({
      file,
      cwd: destDir,
      strict: true,
      preserveOwner: false,
      filter: (_p, entry) => {
        // Entry is a ReadEntry here (the parser only filters real entries).
        const e = entry as tar.ReadEntry;
        const p = rel(normalizeEntryPath(e.path));
        if (p === '') return false;
        e.path = p;
        if (e.type === 'Link' && e.linkpath) e.linkpath = rel(normalizeEntryPath(e.linkpath));
        if (e.mode) e.mode &= 0o777;
        return true;
      },
    });
  } catch (err) {
    throw new TerminalError(`artifact ${file} could not be unpacked into ${destDir}: ${errorMessage(err)}`, { cause: err });
  }
}

function normalizeEntryPath(p: string): string {
  let s = p.replace(/\/+/g, '/');
  while (s.startsWith('./')) s = s.slice(2);
  if (s === '.') s = '';
  return s.replace(/\/$/, '');
}

/** The single top-level directory every entry lives under, if there is one. */
function commonTopDir(entries: ListedEntry[]): string | undefined {
  let top: string | undefined;
  let nested = false;
  for (const e of entries) {
    if (e.path === '') continue;
    const [first] = e.path.split('/');
    if (top === undefined) top = first;
    else if (top !== first) return undefined;
    if (e.path === first) {
      if (e.type !== 'Directory') return undefined;
    } else nested = true;
  }
  return nested ? top : undefined;
}

/**
 * Rejects entries below a symlink (they would be written through it) and links whose target leaves the root.
 * Symlink targets are walked segment by segment: `..` after a symlink segment is not lexical, so it is refused.
 */
function checkLinks(entries: ListedEntry[], fail: (e: ListedEntry, why: string) => never): void {
  const symlinks = new Set(entries.filter((e) => e.type === 'SymbolicLink').map((e) => e.path));
  const files = new Set<string>();
  for (const e of entries) {
    const parts = e.path.split('/');
    for (let i = 1; i < parts.length; i++) {
      if (symlinks.has(parts.slice(0, i).join('/'))) fail(e, `is below symlink ${parts.slice(0, i).join('/')}`);
    }
    if (e.type === 'SymbolicLink') {
      const target = e.linkpath ?? '';
      if (target === '' || target.startsWith('/')) fail(e, `is a symlink to ${JSON.stringify(target)} outside the destination`);
      const stack = parts.slice(0, -1);
      const segs = target.split('/');
      for (let i = 0; i < segs.length; i++) {
        const s = segs[i];
        if (s === '' || s === '.') continue;
        if (s === '..') {
          if (stack.length === 0) fail(e, `is a symlink to ${JSON.stringify(target)} outside the destination`);
          stack.pop();
          continue;
        }
        stack.push(s);
        if (i < segs.length - 1 && symlinks.has(stack.join('/'))) fail(e, `is a symlink through another symlink (${stack.join('/')})`);
      }
    } else if (e.type === 'Link') {
      if (!e.linkpath || !files.has(e.linkpath)) fail(e, `is a hardlink to ${JSON.stringify(e.linkpath)}, which is not an earlier file in the archive`);
    } else if (e.type !== 'Directory') {
      files.add(e.path);
    }
  }
}
