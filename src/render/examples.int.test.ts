import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, expect, onTestFinished, test } from 'vitest';

const releases = fileURLToPath(new URL('../../examples/releases', import.meta.url));

/** Start an example release on a free port; resolves once it logged that it listens. */
async function start(version: string) {
  const child = spawn(process.execPath, ['server.js'], {
    cwd: `${releases}/hello-${version}`,
    env: { PATH: process.env.PATH, PORT: '0' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = once(child, 'exit');
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const lines = createInterface({ input: child.stdout! });
  for await (const line of lines) {
    const msg = JSON.parse(line) as { msg: string; port: number };
    if (msg.msg === 'listening') return { child, exited, base: `http://127.0.0.1:${msg.port}` };
  }
  throw new Error(`hello-${version} exited before listening`);
}

describe('examples/releases', () => {
  for (const version of ['1.0.0', '1.1.0']) {
    test(`hello-${version} answers, reports health and exits cleanly on SIGTERM`, async () => {
      const { child, exited, base } = await start(version);
      const root = await fetch(`${base}/`);
      expect([root.status, await root.text()]).toEqual([200, `hello from ${version}\n`]);
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      expect((await fetch(`${base}/nope`)).status).toBe(404);
      child.kill('SIGTERM');
      expect(await exited).toEqual([0, null]);
    });
  }
});
