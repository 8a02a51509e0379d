import { describe, expect, test } from 'vitest';
import { downstreamResponseHeaders, upstreamRequestHeaders } from './headers.js';

function pairs(raw: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < raw.length; i += 2) out.push([raw[i], raw[i + 1]]);
  return out;
}

describe('upstreamRequestHeaders', () => {
  test('drops hop-by-hop headers and those named in Connection, keeping case and duplicates', () => {
    const { headers, hasBody } = upstreamRequestHeaders(
      ['Host', 'shop.example', 'Connection', 'keep-alive, X-Trace', 'X-Trace', '1', 'Keep-Alive', 'timeout=5',
        'TE', 'trailers', 'Proxy-Authorization', 'Basic x', 'Cookie', 'a=1', 'Cookie', 'b=2', 'Expect', '100-continue'],
      '127.0.0.1',
      'http',
      false,
    );
    expect(pairs(headers)).toEqual([
      ['Host', 'shop.example'],
      ['Cookie', 'a=1'],
      ['Cookie', 'b=2'],
      ['X-Forwarded-For', '127.0.0.1'],
      ['X-Real-IP', '127.0.0.1'],
      ['X-Forwarded-Proto', 'http'],
      ['X-Forwarded-Host', 'shop.example'],
    ]);
    expect(hasBody).toBe(false);
  });

  test('replaces what an untrusted client says about itself: X-Forwarded-*, X-Real-IP, Forwarded', () => {
    const { headers } = upstreamRequestHeaders(
      ['x-forwarded-for', '10.0.0.1', 'X-Forwarded-For', '10.0.0.2', 'x-forwarded-proto', 'https', 'host', 'a:1',
        'X-Real-IP', '6.6.6.6', 'Forwarded', 'for=6.6.6.6;proto=https', 'X-Forwarded-Host', 'evil.example'],
      '::ffff:192.0.2.7',
      'http',
      false,
    );
    expect(pairs(headers)).toEqual([
      ['host', 'a:1'],
      ['X-Forwarded-For', '192.0.2.7'],
      ['X-Real-IP', '192.0.2.7'],
      ['X-Forwarded-Proto', 'http'],
      ['X-Forwarded-Host', 'a:1'],
    ]);
  });

  test('appends the peer to the X-Forwarded-For of a trusted previous hop, whose last entry is the real client', () => {
    const { headers } = upstreamRequestHeaders(
      ['x-forwarded-for', '10.0.0.1', 'X-Forwarded-For', '10.0.0.2', 'host', 'a'],
      '10.1.1.1',
      'https',
      false,
      (peer) => peer === '10.1.1.1',
    );
    expect(pairs(headers)).toEqual([
      ['host', 'a'],
      ['X-Forwarded-For', '10.0.0.1, 10.0.0.2, 10.1.1.1'],
      ['X-Real-IP', '10.0.0.2'],
      ['X-Forwarded-Proto', 'https'],
      ['X-Forwarded-Host', 'a'],
    ]);
  });

  test('detects a body and keeps chunked framing explicit', () => {
    expect(upstreamRequestHeaders(['Content-Length', '12'], 'c', 'http', false)).toMatchObject({ hasBody: true });
    expect(upstreamRequestHeaders(['Content-Length', '0'], 'c', 'http', false)).toMatchObject({ hasBody: false });
    const chunked = upstreamRequestHeaders(['Transfer-Encoding', 'chunked'], 'c', 'http', false);
    expect(chunked.hasBody).toBe(true);
    expect(pairs(chunked.headers)).toContainEqual(['Transfer-Encoding', 'chunked']);
  });

  test('passes Upgrade on only for upgrade requests', () => {
    const raw = ['Connection', 'Upgrade', 'Upgrade', 'websocket', 'Sec-WebSocket-Key', 'k'];
    expect(pairs(upstreamRequestHeaders(raw, 'c', 'http', false).headers).map(([n]) => n)).not.toContain('Upgrade');
    expect(pairs(upstreamRequestHeaders(raw, 'c', 'http', true).headers)).toEqual(
      expect.arrayContaining([['Sec-WebSocket-Key', 'k'], ['Connection', 'upgrade'], ['Upgrade', 'websocket']]),
    );
  });
});

describe('downstreamResponseHeaders', () => {
  test('drops hop-by-hop headers and keeps repeated Set-Cookie', () => {
    const out = downstreamResponseHeaders(
      ['Transfer-Encoding', 'chunked', 'Connection', 'keep-alive', 'Keep-Alive', 'timeout=5', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'Content-Length', '3'],
      false,
    );
    expect(pairs(out)).toEqual([
      ['Set-Cookie', 'a=1'],
      ['Set-Cookie', 'b=2'],
      ['Content-Length', '3'],
    ]);
  });

  test('asks the client to close when the listener is closing', () => {
    expect(pairs(downstreamResponseHeaders(['Content-Length', '0'], true))).toContainEqual(['Connection', 'close']);
  });
});
