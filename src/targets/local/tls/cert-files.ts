/**
 * Certificate files in the state dir (`<state>/tls`, 0700; files 0600) and the checks a certificate must pass before
 * the proxy may serve it: it parses, matches its key, has not expired, and names the hosts it is served for.
 * Messages name the certificate (a file of the ops repository, or a state-dir file), never key material.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface CertificateFacts {
  notBefore: string;
  notAfter: string;
  issuer: string;
  serial: string;
}

/** Throws an Error whose message starts with `what` when the pair cannot be served for `hosts` now. */
export function checkCertificate(certPem: string | Buffer, keyPem: string | Buffer, what: string, hosts: readonly string[], now = Date.now()): CertificateFacts {
  let x: X509Certificate;
  try {
    x = new X509Certificate(certPem);
  } catch {
    throw new Error(`${what}: not a PEM certificate`);
  }
  let ok: boolean;
  try {
    ok = x.checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    throw new Error(`${what}: the key is not a PEM private key`);
  }
  if (!ok) throw new Error(`${what}: the certificate does not match its key`);
  const notAfter = new Date(x.validTo);
  if (notAfter.getTime() <= now) throw new Error(`${what}: the certificate expired on ${notAfter.toISOString()}; renew it and commit the new file`);
  const missing = hosts.filter((h) => x.checkHost(h) === undefined);
  if (missing.length > 0) throw new Error(`${what}: the certificate is not valid for ${missing.join(', ')} (it names ${x.subjectAltName ?? x.subject})`);
  return factsOf(x);
}

export function certificateFacts(certPem: string | Buffer): CertificateFacts {
  return factsOf(new X509Certificate(certPem));
}

function factsOf(x: X509Certificate): CertificateFacts {
  return {
    notBefore: new Date(x.validFrom).toISOString(),
    notAfter: new Date(x.validTo).toISOString(),
    issuer: x.issuer.split('\n').filter(Boolean).join(', '),
    serial: x.serialNumber,
  };
}

export interface PemPaths {
  certFile: string;
  keyFile: string;
}

export function pemPaths(dir: string): PemPaths {
  return { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') };
}

/** Makes `dir` (and missing parents) owner-only. */
export async function privateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
}

/** Writes a file atomically with mode 0600 (a reader sees the old content or the new, never half). */
export async function writePrivate(file: string, content: string | Buffer): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, content, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
}

/** Key first, then certificate: the proxy only reads them after both are in place (on the next table update). */
export async function writePemPair(dir: string, certPem: string | Buffer, keyPem: string | Buffer): Promise<PemPaths> {
  await privateDir(dir);
  const p = pemPaths(dir);
  await writePrivate(p.keyFile, keyPem);
  await writePrivate(p.certFile, certPem);
  return p;
}

export async function readPemPair(dir: string): Promise<{ cert: string; key: string } | undefined> {
  const p = pemPaths(dir);
  try {
    return { cert: await readFile(p.certFile, 'utf8'), key: await readFile(p.keyFile, 'utf8') };
  } catch {
    return undefined;
  }
}
