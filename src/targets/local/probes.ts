import { request } from 'node:http';
import { connect } from 'node:net';
import { spawn } from 'node:child_process';
import type { Probe } from '../../core/model.js';

export interface ProbeContext {
  port: number;
  cwd: string;
  env: Record<string, string>;
  /** Exec probes run as the app's user and group. */
  uid?: number;
  gid?: number;
}

export interface ProbeResult {
  ok: boolean;
  message: string;
}

/** Runs one probe attempt with Kubernetes semantics: HTTP 200-399, a TCP connect, or exit code 0. */
export function runProbe(probe: Probe, ctx: ProbeContext): Promise<ProbeResult> {
  const timeoutMs = probe.timeoutSeconds * 1000;
  if (probe.http) return httpProbe(probe.http.port ?? ctx.port, probe.http.path, timeoutMs);
  if (probe.tcp) return tcpProbe(probe.tcp.port ?? ctx.port, timeoutMs);
  if (probe.exec) return execProbe(probe.exec.command, ctx, timeoutMs);
  return Promise.resolve({ ok: true, message: 'no probe' });
}

function httpProbe(port: number, path: string, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', timeout: timeoutMs, agent: false }, (res) => {
      res.resume();
      const code = res.statusCode ?? 0;
      resolve({ ok: code >= 200 && code < 400, message: `GET ${path} answered ${code}` });
    });
    req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    req.on('error', (err) => resolve({ ok: false, message: `GET ${path} on port ${port} failed: ${err.message}` }));
    req.end();
  });
}

function tcpProbe(port: number, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      sock.destroy();
      resolve({ ok: false, message: `tcp connect to port ${port} timed out after ${timeoutMs} ms` });
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ ok: true, message: `tcp port ${port} open` });
    });
    sock.once('error', (err) => {
      clearTimeout(timer);
      resolve({ ok: false, message: `tcp connect to port ${port} failed: ${err.message}` });
    });
  });
}

function execProbe(command: string[], ctx: ProbeContext, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const [file, ...args] = command;
    const ids = ctx.uid !== undefined ? { uid: ctx.uid, gid: ctx.gid } : {};
    const child = spawn(file, args, { cwd: ctx.cwd, env: { ...ctx.env, PORT: String(ctx.port) }, stdio: 'ignore', ...ids });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      resolve({ ok: false, message: `exec probe failed to start: ${err.message}` });
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ ok: code === 0, message: signal ? `exec probe killed by ${signal}` : `exec probe exited ${code}` });
    });
  });
}
