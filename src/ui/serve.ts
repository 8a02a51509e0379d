import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Hono } from 'hono';

/** The dashboard's files: plain HTML, JS and CSS, no build step, no CDN; served from memory. */
const types: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml' };

/** `src/ui/assets` next to this module; from `dist/ui/` it is found in the source tree (tsc copies no assets). */
export function assetsDir(): string {
  const here = import.meta.dirname;
  for (const dir of [join(here, 'assets'), resolve(here, '../../src/ui/assets')]) if (existsSync(join(dir, 'index.html'))) return dir;
  throw new Error(`dashboard assets not found next to ${here}`);
}

function load(dir: string): Map<string, { body: string; type: string }> {
  const files = new Map<string, { body: string; type: string }>();
  for (const name of ['index.html', 'app.js', 'style.css']) {
    const ext = name.slice(name.lastIndexOf('.'));
    files.set(name, { body: readFileSync(join(dir, name), 'utf8'), type: types[ext] });
  }
  return files;
}

const securityHeaders = {
  // Everything is same-origin; no inline script, no third-party anything.
  'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

export function installUi(app: Hono, dir = assetsDir()): void {
  const files = load(dir);
  const send = (name: string) => {
    const f = files.get(name)!;
    return new Response(f.body, { headers: { 'content-type': f.type, ...securityHeaders } });
  };
  app.get('/', () => send('index.html'));
  app.get('/ui/:file', (c) => {
    const name = c.req.param('file');
    if (!files.has(name) || name === 'index.html') return c.json({ error: 'NotFound', message: `no dashboard file ${name}` }, 404);
    return send(name);
  });
}
