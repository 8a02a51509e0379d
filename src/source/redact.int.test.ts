import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, getJson, startKeelson, stopProcess, tempDir, waitFor } from '../../test/helpers.js';

/** `keelson up` with a token in the repository URL: the token is in no log line and no API answer. */
describe('repository credentials', () => {
  const tmp = tempDir('keelson-redact-');
  afterAll(() => tmp.cleanup());

  it('are redacted in the start-up log, the fetch failure and the status', async () => {
    const secret = 'ghp_0123456789abcdefSECRET';
    const dead = await freePort();
    const port = await freePort();
    const logFile = join(tmp.dir, 'keelson.log');
    const keelson = startKeelson(['--repo', `https://bot:${secret}@127.0.0.1:${dead}/acme/ops.git`, '--state-dir', join(tmp.dir, 'state'), '--listen', `127.0.0.1:${port}`, '--poll', '1h'], logFile);
    try {
      const status = await waitFor('the fetch failure in the status', async () => {
        const s = await getJson(`http://127.0.0.1:${port}/api/v1/status`).catch(() => undefined);
        return s?.source.error && s;
      });
      expect(JSON.stringify(status)).not.toContain(secret);
      expect(status.source.repo).toBe(`https://***@127.0.0.1:${dead}/acme/ops.git`);
    } finally {
      await stopProcess(keelson);
    }
    const log = readFileSync(logFile, 'utf8');
    expect(log).toContain('keelson started');
    expect(log).toContain('source fetch failed');
    expect(log).toContain(`https://***@127.0.0.1:${dead}/acme/ops.git`);
    expect(log).not.toContain(secret);
  });
});
