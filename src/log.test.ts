import { describe, expect, test } from 'vitest';
import { createLogger, parseLogFormat } from './log.js';

function sink(isTTY: boolean) {
  const lines: string[] = [];
  return { lines, out: { isTTY, write: (l: string) => lines.push(l) } };
}

describe('logs', () => {
  test('a terminal gets readable lines; anything else gets JSON', () => {
    const tty = sink(true);
    createLogger({ out: tty.out }).info({ env: 'prod', app: 'web', message: 'two words' }, 'sync started');
    expect(tty.lines).toHaveLength(1);
    // eslint-disable-next-line no-control-regex
    const plain = tty.lines[0].replace(/\x1b\[[0-9;]*m/g, '');
    expect(plain).toMatch(/^\d\d:\d\d:\d\d\.\d{3} INFO  sync started env=prod app=web message="two words"\n$/);

    const file = sink(false);
    createLogger({ out: file.out }).warn({ env: 'prod' }, 'drift detected');
    expect(JSON.parse(file.lines[0])).toMatchObject({ level: 40, msg: 'drift detected', env: 'prod', name: 'keelson' });
  });

  test('--log-format forces one or the other', () => {
    const tty = sink(true);
    createLogger({ out: tty.out, format: 'json' }).info('x');
    expect(JSON.parse(tty.lines[0]).msg).toBe('x');
    const file = sink(false);
    createLogger({ out: file.out, format: 'pretty' }).error('boom');
    expect(file.lines[0]).toMatch(/ ERROR boom\n$/);
    expect(file.lines[0]).not.toContain('\x1b[');
    expect(() => parseLogFormat('yaml')).toThrow(/json or pretty/);
  });
});
