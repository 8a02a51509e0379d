/** One server-sent event. */
export interface SseMessage {
  event: string;
  data: string;
  id?: string;
}

/** Parses a text/event-stream body into messages (multi-line data joined with \n, comments skipped). */
export async function* readSse(body: AsyncIterable<Uint8Array>): AsyncGenerator<SseMessage> {
  const decoder = new TextDecoder();
  let buf = '';
  for await (const chunk of body) {
    buf += decoder.decode(chunk, { stream: true }).replace(/\r\n?/g, '\n');
    let i: number;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const msg: SseMessage = { event: 'message', data: '' };
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (!line || line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') msg.event = value;
        else if (field === 'data') data.push(value);
        else if (field === 'id') msg.id = value;
      }
      msg.data = data.join('\n');
      if (data.length) yield msg;
    }
  }
}

/**
 * Subscribes to the engine's event stream; calls `onEvent` with each parsed event until the returned function
 * is called. Errors (engine gone) end the subscription quietly; callers keep working without live events.
 */
export function subscribeEvents(server: string, headers: Record<string, string>, onEvent: (e: Record<string, any>) => void): { close: () => void; ready: Promise<boolean> } {
  const ac = new AbortController();
  let resolveReady!: (ok: boolean) => void;
  const ready = new Promise<boolean>((r) => (resolveReady = r));
  void (async () => {
    try {
      const res = await fetch(`${server}/api/v1/events`, { headers, signal: ac.signal });
      resolveReady(res.ok);
      if (!res.ok || !res.body) return;
      for await (const m of readSse(res.body as unknown as AsyncIterable<Uint8Array>)) {
        if (m.event === 'ping') continue;
        try {
          onEvent(JSON.parse(m.data));
        } catch {
          /* not JSON: ignore */
        }
      }
    } catch {
      resolveReady(false);
    }
  })();
  return { close: () => ac.abort(), ready };
}
