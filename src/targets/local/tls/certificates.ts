/**
 * The certificates of the local target's hosts, kept by the engine: a certificate file of the ops repository, or one
 * issued and renewed over ACME. Files live in the state dir, where the proxy reads them on every table update, so
 * the proxy keeps serving across engine restarts and loads them again after its own restart.
 *
 *   <state>/tls/files/<env>/<app>/{cert,key}.pem           a certificate of the ops repository (decrypted, checked)
 *   <state>/tls/acme/<directory hash>/account.key          the ACME account
 *   <state>/tls/acme/certs/<hash of directory and hosts>/  {cert,key}.pem, ca.pem (trust for the directory),
 *                                                          status.json (last renewal, last error)
 *
 * A valid certificate on disk is reused at start-up (no new order, friendly to the CA's rate limits). Renewal comes
 * when less than a third of the lifetime, at most 30 days, remains. A failed order is retried with exponential
 * backoff; the previous certificate stays in service meanwhile (or plain HTTP for a first issue, logged loudly).
 */
import type { CertificateStatus } from '../../target.js';
import { createHash } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../../../core/errors.js';
import type { EventBus } from '../../../core/events.js';
import type { Logger } from '../../../log.js';
import type { CertificateSpec } from '../proxy/protocol.js';
import { AcmeIssuer, type AcmeChallenge, type ChallengeSink } from './acme.js';
import { checkCertificate, pemPaths, privateDir, readPemPair, writePemPair, writePrivate, type CertificateFacts } from './cert-files.js';

const day = 86_400_000;

/** A certificate as `keelson status` shows it (target.ts), with the app it belongs to. */
export interface CertificateView extends CertificateStatus {
  env: string;
  app: string;
}

export interface CertificateManagerOptions {
  stateDir: string;
  log: Logger;
  bus: EventBus;
  /** Hands the proxy the new certificate list and challenges; resolves once the proxy has them. */
  publish: () => Promise<void>;
  /** Renew when this much time is left; default: a third of the lifetime, at most 30 days. */
  renewBeforeMs?: number;
  /** First retry delay after a failed order (doubling up to `retryMaxMs`). Default 60 s. */
  retryBaseMs?: number;
  retryMaxMs?: number;
}

/** `<state>/tls/index.json`: which app a certificate directory belongs to, for `restore`. */
interface IndexEntry {
  env: string;
  app: string;
  hosts: string[];
  source: 'acme' | 'file';
  dir: string;
  acme?: { email: string; directory: string; challenge?: AcmeChallenge };
}

interface Entry {
  env: string;
  app: string;
  hosts: string[];
  source: 'acme' | 'file';
  dir: string;
  acme?: { email: string; directory: string; ca?: string; challenge?: AcmeChallenge };
  facts?: CertificateFacts;
  lastRenewal?: string;
  lastError?: string;
  failures: number;
  nextAttemptAt?: number;
  /** Set once the files on disk were looked at (ACME): a valid one is reused instead of ordering. */
  examined: boolean;
  /** Serial of the certificate the proxy was last handed (it serves that one). */
  servedSerial?: string;
}

export class CertificateManager {
  private readonly entries = new Map<string, Entry>();
  private readonly challengeAnswers = new Map<string, string>();
  private readonly alpnAnswers = new Map<string, { cert: string; key: string }>();
  private readonly issuer: AcmeIssuer;
  private readonly tlsDir: string;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private closed = false;

  constructor(private readonly o: CertificateManagerOptions) {
    this.tlsDir = join(o.stateDir, 'tls');
    this.issuer = new AcmeIssuer(join(this.tlsDir, 'acme'));
  }

  /** A certificate from the ops repository, already decrypted: checked, then written where the proxy reads it. */
  async useFile(env: string, app: string, hosts: string[], cert: string, key: string, what: string): Promise<void> {
    const facts = checkCertificate(cert, key, what, hosts);
    const dir = join(this.tlsDir, 'files', env, app);
    await privateDir(this.tlsDir);
    await writePemPair(dir, cert, key);
    this.entries.set(`${env}/${app}`, { env, app, hosts, source: 'file', dir, facts, failures: 0, examined: true, lastRenewal: new Date().toISOString() });
    await this.saveIndex();
    await this.publish();
  }

  /**
   * At start-up, before any route is published: the certificates served before the restart, from the index and the
   * files on disk, so that the proxy is never handed a table without them. Apps that are gone are dropped by `retain`.
   */
  async restore(): Promise<void> {
    let index: IndexEntry[];
    try {
      index = JSON.parse(await readFile(join(this.tlsDir, 'index.json'), 'utf8')) as IndexEntry[];
    } catch {
      return;
    }
    for (const i of index) {
      const ca = i.source === 'acme' ? await readFile(join(i.dir, 'ca.pem'), 'utf8').catch(() => undefined) : undefined;
      const e: Entry = { env: i.env, app: i.app, hosts: i.hosts, source: i.source, dir: i.dir, failures: 0, examined: false, ...(await readStatus(i.dir)) };
      if (i.acme) e.acme = { ...i.acme, ...(ca === undefined ? {} : { ca }) };
      // The proxy kept serving it while the engine was away, and the first table update hands it over again.
      if (await this.examine(e)) e.servedSerial = e.facts!.serial;
      this.entries.set(`${i.env}/${i.app}`, e);
    }
  }

  /** Drops the certificates of apps that no longer run (after an engine restart found its apps). */
  async retain(keep: (env: string, app: string) => boolean): Promise<void> {
    for (const e of [...this.entries.values()]) if (!keep(e.env, e.app)) await this.forget(e.env, e.app);
  }

  /** After an engine restart: the certificate file an adopted app had, if still there and valid. */
  async adoptFile(env: string, app: string, hosts: string[]): Promise<void> {
    const dir = join(this.tlsDir, 'files', env, app);
    const pair = await readPemPair(dir);
    if (!pair) return;
    try {
      const facts = checkCertificate(pair.cert, pair.key, pemPaths(dir).certFile, hosts);
      this.entries.set(`${env}/${app}`, { env, app, hosts, source: 'file', dir, facts, failures: 0, examined: true, servedSerial: facts.serial });
    } catch (err) {
      this.o.log.error({ env, app, error: errorMessage(err) }, 'certificate not served');
    }
  }

  /** An app wants ACME certificates for `hosts`; `ca` (PEM) when its directory is served with a private CA. */
  async useAcme(env: string, app: string, hosts: string[], acme: { email: string; directory: string; challenge?: AcmeChallenge }, ca?: string): Promise<void> {
    const sorted = [...hosts].sort();
    const id = createHash('sha256').update(`${acme.directory}\n${sorted.join(',')}`).digest('hex').slice(0, 16);
    const dir = join(this.tlsDir, 'acme', 'certs', `${sorted[0]}-${id}`);
    await privateDir(dir);
    if (ca !== undefined) await writePrivate(join(dir, 'ca.pem'), ca);
    else ca = await readFile(join(dir, 'ca.pem'), 'utf8').catch(() => undefined);
    const key = `${env}/${app}`;
    const prev = this.entries.get(key);
    if (prev && prev.dir === dir && prev.acme?.email === acme.email && prev.acme.challenge === acme.challenge) {
      prev.acme = { ...acme, ...(ca === undefined ? {} : { ca }) };
    } else {
      const e: Entry = { env, app, hosts: sorted, source: 'acme', dir, acme: { ...acme, ...(ca === undefined ? {} : { ca }) }, failures: 0, examined: false, ...(await readStatus(dir)) };
      // A valid certificate already on disk (an earlier order for the same names) is served at once, not ordered again.
      if (await this.examine(e)) {
        this.entries.set(key, e);
        await this.publish();
      } else {
        this.entries.set(key, e);
      }
      await this.saveIndex();
    }
    this.kick();
  }

  /** Reads the certificate on disk of an ACME or file entry; true when it can be served. */
  private async examine(e: Entry): Promise<boolean> {
    e.examined = true;
    const pair = await readPemPair(e.dir);
    if (!pair) return false;
    try {
      e.facts = checkCertificate(pair.cert, pair.key, pemPaths(e.dir).certFile, e.hosts);
      return true;
    } catch (err) {
      this.o.log.warn({ hosts: e.hosts, error: errorMessage(err) }, 'certificate on disk not usable');
      return false;
    }
  }

  private async saveIndex(): Promise<void> {
    const index: IndexEntry[] = [...this.entries.values()].map((e) => ({
      env: e.env,
      app: e.app,
      hosts: e.hosts,
      source: e.source,
      dir: e.dir,
      ...(e.acme ? { acme: { email: e.acme.email, directory: e.acme.directory, ...(e.acme.challenge ? { challenge: e.acme.challenge } : {}) } } : {}),
    }));
    await privateDir(this.tlsDir);
    await writePrivate(join(this.tlsDir, 'index.json'), `${JSON.stringify(index, null, 2)}\n`);
  }

  /** The app no longer wants certificates (removed, or tls dropped). ACME files stay on disk for a later return. */
  async forget(env: string, app: string): Promise<void> {
    const e = this.entries.get(`${env}/${app}`);
    if (!e) return;
    this.entries.delete(`${env}/${app}`);
    if (e.source === 'file') await rm(e.dir, { recursive: true, force: true });
    await this.saveIndex();
    await this.publish();
  }

  has(env: string, app: string): boolean {
    return this.entries.has(`${env}/${app}`);
  }

  /** What the proxy serves: every certificate that is on disk and valid. */
  proxyCertificates(): CertificateSpec[] {
    return [...this.entries.values()].filter((e) => e.facts).map((e) => ({ hosts: e.hosts, ...pemPaths(e.dir) }));
  }

  challenges(): Record<string, string> {
    return Object.fromEntries(this.challengeAnswers);
  }

  alpnChallenges(): Record<string, { cert: string; key: string }> {
    return Object.fromEntries(this.alpnAnswers);
  }

  views(): CertificateView[] {
    return [...this.entries.values()].map((e) => {
      const expired = e.facts !== undefined && Date.parse(e.facts.notAfter) <= Date.now();
      // Ready once the proxy has the current certificate (a renewal is Ready again once the new one is handed over).
      const current = e.facts !== undefined && e.servedSerial === e.facts.serial && !expired;
      const serving = e.servedSerial !== undefined && !expired;
      return {
        env: e.env,
        app: e.app,
        hosts: e.hosts,
        source: e.source,
        state: e.lastError !== undefined ? 'Failed' : current ? 'Ready' : 'Pending',
        serving,
        issuer: e.facts?.issuer ?? null,
        notAfter: e.facts?.notAfter ?? null,
        serial: e.facts?.serial ?? null,
        lastRenewal: e.lastRenewal ?? null,
        lastError: e.lastError ?? null,
        nextAttemptAt: e.nextAttemptAt === undefined ? null : new Date(e.nextAttemptAt).toISOString(),
      };
    });
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** Resolves when no order is under way (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Looks at every ACME certificate now (coalesced); orders those missing or due, one at a time. */
  kick(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        for (const e of [...this.entries.values()]) if (e.source === 'acme' && this.entries.get(`${e.env}/${e.app}`) === e) await this.reconcile(e);
      } while (this.again && !this.closed);
    })()
      .catch((err: unknown) => this.o.log.error({ err: errorMessage(err) }, 'certificate check failed'))
      .finally(() => {
        this.running = undefined;
        this.schedule();
      });
  }

  private renewAt(f: CertificateFacts): number {
    const notAfter = Date.parse(f.notAfter);
    const lifetime = notAfter - Date.parse(f.notBefore);
    return notAfter - (this.o.renewBeforeMs ?? Math.min(30 * day, lifetime / 3));
  }

  private async reconcile(e: Entry): Promise<void> {
    if (!e.examined && (await this.examine(e))) await this.publish();
    const now = Date.now();
    if (e.facts && now < this.renewAt(e.facts)) return;
    if (e.nextAttemptAt !== undefined && now < e.nextAttemptAt) return;
    const renewal = e.facts !== undefined;
    try {
      const { email, directory, ca, challenge } = e.acme!;
      const issued = await this.issuer.issue({ hosts: e.hosts, email, directory, ...(ca ? { ca } : {}), ...(challenge ? { challenge } : {}) }, this.sink());
      const facts = checkCertificate(issued.cert, issued.key, `certificate from ${e.acme!.directory}`, e.hosts);
      await writePemPair(e.dir, issued.cert, issued.key);
      Object.assign(e, { facts, lastRenewal: new Date().toISOString(), lastError: undefined, failures: 0, nextAttemptAt: undefined });
      await writeStatus(e);
      this.o.log.info({ env: e.env, app: e.app, hosts: e.hosts, notAfter: facts.notAfter, serial: facts.serial, renewal }, 'certificate issued');
      this.o.bus.publish({ type: 'certificate.issued', env: e.env, app: e.app, hosts: e.hosts, notAfter: facts.notAfter, renewal });
    } catch (err) {
      e.failures++;
      const delay = Math.min((this.o.retryBaseMs ?? 60_000) * 2 ** (e.failures - 1), this.o.retryMaxMs ?? 3_600_000);
      e.lastError = errorMessage(err);
      e.nextAttemptAt = Date.now() + delay;
      await writeStatus(e).catch(() => undefined);
      const serving = e.facts !== undefined && Date.parse(e.facts.notAfter) > Date.now();
      // Loud: without a certificate the hosts are served on plain HTTP only.
      this.o.log.error(
        { env: e.env, app: e.app, hosts: e.hosts, error: e.lastError, retryInMs: delay, serving: serving ? 'previous certificate' : 'plain HTTP only' },
        renewal ? 'certificate renewal failed' : 'certificate order failed; hosts are served on plain HTTP only',
      );
      this.o.bus.publish({ type: 'certificate.failed', env: e.env, app: e.app, hosts: e.hosts, renewal, message: e.lastError, retryAt: new Date(e.nextAttemptAt).toISOString() });
      return;
    }
    await this.install();
  }

  /** The certificate is on disk: hand it to the proxy (a failure here is the proxy's, not the order's: no new order). */
  private async install(): Promise<void> {
    await this.publish().catch((err: unknown) => this.o.log.error({ err: errorMessage(err) }, 'certificates not handed to the proxy; retried with the next table update'));
  }

  /** Sends the table to the proxy; once it has it, the certificates it carries are served. */
  private async publish(): Promise<void> {
    const sent = [...this.entries.values()].filter((e) => e.facts).map((e) => [e, e.facts!.serial] as const);
    await this.o.publish();
    for (const [e, serial] of sent) e.servedSerial = serial;
  }

  private sink(): ChallengeSink {
    return {
      set: async (token, answer) => {
        this.challengeAnswers.set(token, answer);
        await this.publish();
      },
      remove: async (token) => {
        this.challengeAnswers.delete(token);
        await this.publish();
      },
      setAlpn: async (host, cert, key) => {
        this.alpnAnswers.set(host, { cert, key });
        await this.publish();
      },
      removeAlpn: async (host) => {
        this.alpnAnswers.delete(host);
        await this.publish();
      },
    };
  }

  private schedule(): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    let next = Date.now() + 3_600_000;
    for (const e of this.entries.values()) {
      if (e.source !== 'acme') continue;
      if (e.nextAttemptAt !== undefined) next = Math.min(next, e.nextAttemptAt);
      else if (e.facts) next = Math.min(next, this.renewAt(e.facts));
    }
    this.timer = setTimeout(() => this.kick(), Math.max(250, next - Date.now()));
    this.timer.unref();
  }
}

async function readStatus(dir: string): Promise<Pick<Entry, 'lastRenewal' | 'lastError'>> {
  try {
    const s = JSON.parse(await readFile(join(dir, 'status.json'), 'utf8')) as { lastRenewal?: string; lastError?: string };
    return { ...(s.lastRenewal ? { lastRenewal: s.lastRenewal } : {}), ...(s.lastError ? { lastError: s.lastError } : {}) };
  } catch {
    return {};
  }
}

async function writeStatus(e: Entry): Promise<void> {
  await writePrivate(join(e.dir, 'status.json'), `${JSON.stringify({ hosts: e.hosts, lastRenewal: e.lastRenewal ?? null, lastError: e.lastError ?? null })}\n`);
}
