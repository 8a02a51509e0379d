/**
 * The certificates the HTTPS port serves, chosen by SNI. Each table update re-reads the PEM files it names; a file
 * whose content changed gets a new secure context, used by new handshakes only (connections already established keep
 * theirs), so a renewal swaps certificates without dropping a connection. A file that fails to load leaves the
 * previous certificate in place. Key material never leaves this module: statuses carry the certificate's facts only.
 */
import { createHash, X509Certificate } from 'node:crypto';
import fs from 'node:fs/promises';
import tls from 'node:tls';
import { errorMessage } from '../../../core/errors.js';
import type { CertificateSpec, CertificateStatus } from './protocol.js';

interface Loaded {
  context: tls.SecureContext;
  /** sha256 of cert and key files, to skip unchanged files. */
  digest: string;
  notAfter: string;
  issuer: string;
  serial: string;
}

export class CertificateStore {
  /** By host name (lower-case), or `*.example.com` for a wildcard. */
  private byHost = new Map<string, Loaded>();
  /** By cert file, so an unchanged file is not parsed again. */
  private byFile = new Map<string, Loaded>();

  /** Loads the certificates of a new table; hosts no longer listed stop being served. */
  async update(specs: readonly CertificateSpec[]): Promise<CertificateStatus[]> {
    const nextByHost = new Map<string, Loaded>();
    const nextByFile = new Map<string, Loaded>();
    const statuses: CertificateStatus[] = [];
    for (const spec of specs) {
      const hosts = spec.hosts.map((h) => h.toLowerCase());
      const previous = this.byFile.get(spec.certFile);
      let loaded: Loaded | undefined;
      let error: string | undefined;
      try {
        loaded = await load(spec, previous);
      } catch (err) {
        error = errorMessage(err);
        loaded = previous;
      }
      if (loaded) {
        nextByFile.set(spec.certFile, loaded);
        for (const h of hosts) nextByHost.set(h, loaded);
      }
      statuses.push({
        hosts,
        certFile: spec.certFile,
        loaded: loaded !== undefined,
        ...(loaded ? { notAfter: loaded.notAfter, issuer: loaded.issuer, serial: loaded.serial } : {}),
        ...(error === undefined ? {} : { error }),
      });
    }
    this.byHost = nextByHost;
    this.byFile = nextByFile;
    return statuses;
  }

  /** The context for an SNI name: the exact name, else a wildcard one label up. */
  contextFor(servername: string): tls.SecureContext | undefined {
    return this.lookup(servername.toLowerCase())?.context;
  }

  has(host: string): boolean {
    return this.lookup(host) !== undefined;
  }

  get size(): number {
    return this.byHost.size;
  }

  private lookup(name: string): Loaded | undefined {
    const exact = this.byHost.get(name);
    if (exact) return exact;
    const dot = name.indexOf('.');
    return dot > 0 ? this.byHost.get(`*${name.slice(dot)}`) : undefined;
  }
}

async function load(spec: CertificateSpec, previous: Loaded | undefined): Promise<Loaded> {
  const [cert, key] = await Promise.all([fs.readFile(spec.certFile), fs.readFile(spec.keyFile)]).catch((err: unknown) => {
    throw new Error(`cannot read certificate ${spec.certFile} or its key: ${errorMessage(err)}`);
  });
  const digest = createHash('sha256').update(cert).update('\0').update(key).digest('hex');
  if (previous && previous.digest === digest) return previous;
  const facts = certificateFacts(cert, spec.certFile);
  let context: tls.SecureContext;
  try {
    context = tls.createSecureContext({ cert, key });
  } catch (err) {
    // OpenSSL's message names no key material ("key values mismatch"); keep it.
    throw new Error(`certificate ${spec.certFile} cannot be used with its key: ${errorMessage(err)}`);
  }
  return { context, digest, ...facts };
}

/** Issuer, expiry and serial of the first certificate of a PEM chain. */
export function certificateFacts(pem: Buffer | string, file: string): { notAfter: string; issuer: string; serial: string } {
  let x: X509Certificate;
  try {
    x = new X509Certificate(pem);
  } catch (err) {
    throw new Error(`${file} is not a PEM certificate: ${errorMessage(err)}`);
  }
  return { notAfter: new Date(x.validTo).toISOString(), issuer: oneLine(x.issuer), serial: x.serialNumber };
}

function oneLine(dn: string): string {
  return dn.split('\n').filter(Boolean).join(', ');
}
