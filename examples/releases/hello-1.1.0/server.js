// Example app for Keelson: no dependencies, listens on 127.0.0.1:$PORT, drains on SIGTERM.
import { createServer } from 'node:http';

const version = process.env.APP_VERSION ?? '1.1.0';
const greeting = process.env.GREETING ?? 'hello';
const port = Number(process.env.PORT ?? 3000);

const server = createServer((req, res) => {
  const path = new URL(req.url ?? '/', 'http://localhost').pathname;
  if (req.method === 'GET' && path === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
  } else if (req.method === 'GET' && path === '/') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`${greeting} from ${version}\n`);
  } else {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  }
});

server.listen(port, '127.0.0.1', () => {
  console.log(JSON.stringify({ msg: 'listening', port: server.address().port, version, pid: process.pid }));
});

function shutdown(signal) {
  console.log(JSON.stringify({ msg: 'draining', signal }));
  // Stop accepting; close() waits for in-flight requests, idle keep-alive sockets are closed now.
  server.close(() => process.exit(0));
  server.closeIdleConnections();
}
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);
