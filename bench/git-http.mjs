/**
 * Git's smart HTTP protocol on loopback, for peers that cannot read a repository from disk (Flux's source-controller
 * clones over HTTP and does not speak the dumb protocol): `git http-backend` as a CGI program behind a small Node
 * HTTP server. Read-only: pushes are refused (http.receivepack is off by default for anonymous users).
 *
 *   const srv = await serveGit(parentDir);     // every repository under parentDir, exported
 *   srv.url('ops')                             // http://127.0.0.1:PORT/ops
 *   await srv.close();
 */
import { spawn } from 'node:child_process';
import http from 'node:http';

/** Serves the git repositories under `projectRoot` (GIT_PROJECT_ROOT) on 127.0.0.1, on a free port. */
export async function serveGit(projectRoot) {
  const server = http.createServer((req, res) => cgi(projectRoot, req, res));
  server.keepAliveTimeout = 5000;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return {
    port,
    url: (repo) => `http://127.0.0.1:${port}/${repo}`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** One request through `git http-backend` (RFC 3875 CGI): environment in, body piped, CGI headers parsed. */
function cgi(projectRoot, req, res) {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  const pathInfo = decodeURIComponent(url.pathname);
  if (pathInfo.split('/').includes('..')) {
    res.writeHead(400).end('bad path\n');
    return;
  }
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/',
    GIT_PROJECT_ROOT: projectRoot,
    GIT_HTTP_EXPORT_ALL: '1',
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_PROTOCOL: `HTTP/${req.httpVersion}`,
    REQUEST_METHOD: req.method ?? 'GET',
    PATH_INFO: pathInfo,
    QUERY_STRING: url.search.slice(1),
    CONTENT_TYPE: req.headers['content-type'] ?? '',
    REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
  };
  if (req.headers['content-length']) env.CONTENT_LENGTH = req.headers['content-length'];
  // Protocol v2 is negotiated with this header; http-backend reads it from GIT_PROTOCOL.
  if (req.headers['git-protocol']) env.GIT_PROTOCOL = String(req.headers['git-protocol']);
  if (req.headers['content-encoding']) env.HTTP_CONTENT_ENCODING = String(req.headers['content-encoding']);
  const child = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  req.pipe(child.stdin);
  child.stdin.on('error', () => {});
  let stderr = '';
  child.stderr.on('data', (c) => (stderr += c));
  let head = Buffer.alloc(0);
  let headersDone = false;
  child.stdout.on('data', (chunk) => {
    if (headersDone) {
      res.write(chunk);
      return;
    }
    head = Buffer.concat([head, chunk]);
    let end = head.indexOf('\r\n\r\n');
    let sep = 4;
    if (end < 0) {
      end = head.indexOf('\n\n');
      sep = 2;
    }
    if (end < 0) return;
    headersDone = true;
    let status = 200;
    const headers = {};
    for (const line of head.subarray(0, end).toString('latin1').split(/\r?\n/)) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim();
      const value = line.slice(colon + 1).trim();
      if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10) || 500;
      else headers[name] = value;
    }
    res.writeHead(status, headers);
    const rest = head.subarray(end + sep);
    if (rest.length) res.write(rest);
  });
  child.on('close', (code) => {
    if (!headersDone) {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`git http-backend exited ${code}: ${stderr}\n`);
      return;
    }
    res.end();
  });
  req.on('aborted', () => child.kill());
}
