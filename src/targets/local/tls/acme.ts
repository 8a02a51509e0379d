/**
 * ACME issuance with `acme-client` (RFC 8555): one account per directory URL, its key kept in the state dir
 * (`<state>/tls/acme/<directory hash>/account.key`, 0600) so a restarted engine reuses the account. Challenges are
 * HTTP-01 (answered by the proxy on the HTTP web port) or TLS-ALPN-01 (a challenge certificate the proxy shows on the
 * HTTPS web port to clients asking for `acme-tls/1`); see `ChallengeSink`.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import tls from 'node:tls';
import { privateDir, writePrivate } from './cert-files.js';

export interface IssueRequest {
  hosts: string[];
  email: string;
  directory: string;
  /** PEM certificates of the CA serving the directory (private CA, Pebble), trusted besides the usual ones. */
  ca?: string;
  /** Default `http-01`. */
  challenge?: AcmeChallenge;
}

export type AcmeChallenge = 'http-01' | 'tls-alpn-01';

/** Where HTTP-01 answers go: the proxy's table, updated before the CA is told to validate. */
export interface ChallengeSink {
  set(token: string, keyAuthorization: string): Promise<void>;
  remove(token: string): Promise<void>;
  setAlpn(host: string, cert: string, key: string): Promise<void>;
  removeAlpn(host: string): Promise<void>;
}

export interface Issued {
  cert: string;
  key: string;
}

/**
 * acme-client (and the X.509 library under it) loaded when a certificate is first ordered: a quarter of a second of
 * every engine's start otherwise, and most engines never order one.
 */
const acmeClient = () => import('acme-client');

export class AcmeIssuer {
  constructor(private readonly dir: string) {}

  /** Orders a certificate for `hosts`; the key is new for each order (ECDSA P-256). */
  async issue(req: IssueRequest, challenges: ChallengeSink): Promise<Issued> {
    const acme = await acmeClient();
    const accountKey = await this.accountKey(req.directory);
    // acme-client talks through its own axios instance: trust the directory's CA there, keeping the usual roots
    // (and NODE_EXTRA_CA_CERTS, which a custom `ca` would otherwise drop).
    // Its own retries of failed requests (5, waiting 5 s more each time) would hold an order for over a minute; two
    // quick ones, and the certificate manager's backoff does the rest.
    Object.assign((acme.axios.defaults as { acmeSettings?: object }).acmeSettings ?? {}, { retryMaxAttempts: 2, retryDefaultDelay: 1 });
    const agent = req.ca === undefined ? undefined : new https.Agent({ ca: [...tls.rootCertificates, ...extraCaCerts(), req.ca], keepAlive: false });
    acme.axios.defaults.httpsAgent = agent;
    // acme-client reports an unreachable directory as a TypeError; say what happened instead.
    await reachable(req.directory, agent);
    const client = new acme.Client({ directoryUrl: req.directory, accountKey });
    const key = await acme.crypto.createPrivateEcdsaKey('P-256');
    const [, csr] = await acme.crypto.createCsr({ commonName: req.hosts[0], altNames: req.hosts }, key);
    const type = req.challenge ?? 'http-01';
    const cert = await client.auto({
      csr,
      email: req.email,
      termsOfServiceAgreed: true,
      challengePriority: [type],
      // The CA checks the answer itself; a self-check from this machine would go to the public name's ports 80/443.
      skipChallengeVerification: true,
      challengeCreateFn: async (authz, challenge, keyAuthorization) => {
        if (challenge.type !== type) throw new Error(`the CA offers no ${type} challenge for ${authz.identifier.value} (got ${challenge.type})`);
        if (type === 'http-01') return challenges.set(challenge.token, keyAuthorization);
        const [alpnKey, alpnCert] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization);
        return challenges.setAlpn(authz.identifier.value, alpnCert.toString(), alpnKey.toString());
      },
      challengeRemoveFn: async (authz, challenge) => {
        if ((challenge.type as string) === 'tls-alpn-01') return challenges.removeAlpn(authz.identifier.value);
        return challenges.remove(challenge.token);
      },
    });
    return { cert, key: key.toString() };
  }

  private async accountKey(directory: string): Promise<Buffer> {
    const dir = join(this.dir, createHash('sha256').update(directory).digest('hex').slice(0, 16));
    const file = join(dir, 'account.key');
    const existing = await readFile(file).catch(() => undefined);
    if (existing) return existing;
    await privateDir(dir);
    const acme = await acmeClient();
    const key = await acme.crypto.createPrivateEcdsaKey('P-256');
    await writePrivate(file, key);
    await writePrivate(join(dir, 'directory.txt'), `${directory}\n`);
    return key;
  }
}

function reachable(directory: string, agent: https.Agent | undefined): Promise<void> {
  const url = new URL(directory);
  const get = url.protocol === 'http:' ? http.get : https.get;
  return new Promise((resolve, reject) => {
    const req = get(url, { ...(agent && url.protocol === 'https:' ? { agent } : {}), headers: { 'user-agent': 'keelson' }, timeout: 15_000 }, (res) => {
      res.resume();
      if (res.statusCode === 200) resolve();
      else reject(new Error(`the ACME directory ${directory} answered HTTP ${res.statusCode}`));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 15 s')));
    req.on('error', (err: NodeJS.ErrnoException) => reject(new Error(`cannot reach the ACME directory ${directory}: ${err.code ?? err.message}`)));
  });
}

function extraCaCerts(): string[] {
  const file = process.env.NODE_EXTRA_CA_CERTS;
  if (!file) return [];
  try {
    return [readFileSync(file, 'utf8')];
  } catch {
    return [];
  }
}
