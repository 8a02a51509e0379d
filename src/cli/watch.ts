import { subscribeEvents } from './sse.js';

/**
 * `keelson status --watch`: redraws the status table in place on every event (and every few seconds), until
 * Ctrl-C. On a terminal it uses the alternate screen, so the shell's scrollback is left as it was.
 */
export async function watchStatus(o: {
  server: string;
  headers: Record<string, string>;
  fetchText: () => Promise<string>;
  intervalMs?: number;
  out?: NodeJS.WriteStream;
  signal?: AbortSignal;
}): Promise<void> {
  const out = o.out ?? process.stdout;
  const tty = Boolean(out.isTTY);
  let dirty = true;
  let drawing = false;
  let live = false;
  const draw = async () => {
    if (drawing) return void (dirty = true);
    drawing = true;
    dirty = false;
    try {
      const text = await o.fetchText();
      const header = `keelson status --watch · ${new Date().toLocaleTimeString()} · ${live ? 'live' : 'polling'} · Ctrl-C to quit`;
      // Home, draw, clear what is left of the previous frame: no flicker.
      if (tty) out.write(`\x1b[H${header}\x1b[K\n\n${text.replace(/\n/g, '\x1b[K\n')}\x1b[K\n\x1b[J`);
      else out.write(`${header}\n${text}\n\n`);
    } catch (err) {
      out.write(`${tty ? '\x1b[H\x1b[J' : ''}cannot read status: ${(err as Error).message}; retrying\n`);
    } finally {
      drawing = false;
    }
    if (dirty) setTimeout(() => void draw(), 100);
  };
  if (tty) out.write('\x1b[?1049h\x1b[?25l');
  const restore = () => tty && out.write('\x1b[?25h\x1b[?1049l');
  const sub = subscribeEvents(o.server, o.headers, () => {
    if (!dirty) {
      dirty = true;
      setTimeout(() => void draw(), 200);
    }
  });
  sub.ready.then((ok) => (live = ok));
  await draw();
  const timer = setInterval(() => void draw(), o.intervalMs ?? 5000);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    o.signal?.addEventListener('abort', stop);
  });
  clearInterval(timer);
  sub.close();
  restore();
}
