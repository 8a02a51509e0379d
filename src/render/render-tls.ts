/**
 * Render of `hosts` and `tls` (local target): the App's values or the environment's override, a static certificate's
 * SOPS references added to the app's secret files (decrypted, digested and checked like any secret), and the check
 * that no two apps of any environment claim one host name.
 */
import { dirname, join, resolve } from 'node:path';
import { tlsCertPath, tlsKeyPath, type DesiredApp, type DesiredTls } from '../core/model.js';
import type { Issue } from '../core/types.js';
import { reference } from '../secrets/refs.js';
import { isInside, toRepoPath, type ParsedDoc } from './load.js';
import { formatRef, issueAt, locate, type PathSegment } from './positions.js';
import { DEFAULT_ACME_DIRECTORY, DEFAULT_HSTS_SECONDS, type TlsSpec } from './schema-tls.js';

/** Where the fields of one app in one environment were declared (the override's if it sets them). */
export interface TlsSources {
  hosts?: { doc: ParsedDoc; at: PathSegment[]; value: string[] };
  tls?: { doc: ParsedDoc; at: PathSegment[]; value: TlsSpec };
}

export interface HostClaim {
  env: string;
  app: string;
  host: string;
  doc: ParsedDoc;
  path: PathSegment[];
  selected: boolean;
}

/** Sets `desired.hosts` and `desired.tls` (and the certificate's secret references); issues at file:line:col. */
export function applyHostsAndTls(root: string, desired: DesiredApp, src: TlsSources, kubernetes: boolean, issues: Issue[]): HostClaim[] {
  if (kubernetes) {
    for (const s of [src.hosts, src.tls]) {
      if (s) issues.push(issueAt(s.doc, s.at, `App "${desired.name}" in environment "${desired.env}": hosts and tls are for the local target (its proxy); this environment runs on Kubernetes`, 'key'));
    }
    return [];
  }
  if (src.tls && !src.hosts) {
    issues.push(issueAt(src.tls.doc, src.tls.at, `App "${desired.name}" in environment "${desired.env}" has tls but no hosts; add spec.hosts (the names the certificate is for)`, 'key'));
  }
  const claims: HostClaim[] = [];
  if (src.hosts) {
    desired.hosts = [...new Set(src.hosts.value)];
    src.hosts.value.forEach((host, i) => claims.push({ env: desired.env, app: desired.name, host, doc: src.hosts!.doc, path: [...src.hosts!.at, i], selected: true }));
  }
  if (src.tls) {
    const t = src.tls.value;
    const out: DesiredTls = {};
    if (t.acme) {
      out.acme = { email: t.acme.email, directory: t.acme.directory ?? DEFAULT_ACME_DIRECTORY, ...(t.acme.challenge ? { challenge: t.acme.challenge } : {}) };
      if (t.acme.caFile !== undefined) {
        const abs = resolve(dirname(join(root, src.tls.doc.file)), t.acme.caFile);
        if (!isInside(root, abs) || abs === root) {
          issues.push(issueAt(src.tls.doc, [...src.tls.at, 'acme', 'caFile'], `caFile "${t.acme.caFile}" resolves to ${abs}, outside the repository root ${root}; keep it inside the ops repository (or trust the CA with NODE_EXTRA_CA_CERTS)`));
        } else {
          out.acme.caFile = toRepoPath(root, abs);
        }
      }
    }
    if (t.certificate) {
      const at = [...src.tls.at, 'certificate'];
      const s = { doc: src.tls.doc, at, secrets: { env: [], files: [] } };
      const cert = reference(root, s, ['cert'], t.certificate.cert.file, t.certificate.cert.key, issues);
      const key = reference(root, s, ['key'], t.certificate.key.file, t.certificate.key.key, issues);
      if (cert && key) {
        desired.secrets ??= { env: {}, files: {} };
        desired.secrets.files[tlsCertPath] = cert;
        desired.secrets.files[tlsKeyPath] = key;
        out.certificate = { cert: `${cert.file}#${cert.key}`, key: `${key.file}#${key.key}` };
      }
    }
    if (t.hsts !== undefined && t.hsts !== false) out.hstsMaxAgeSeconds = t.hsts === true ? DEFAULT_HSTS_SECONDS : t.hsts;
    desired.tls = out;
  }
  return claims;
}

/** Two apps (in one environment or two) claiming one host name: an issue at each claim that is rendered. */
export function checkHostClaims(claims: HostClaim[], issues: Issue[]): void {
  const byHost = new Map<string, HostClaim[]>();
  for (const c of claims) byHost.set(c.host, [...(byHost.get(c.host) ?? []), c]);
  for (const [host, group] of byHost) {
    const owners = new Set(group.map((c) => `${c.env}/${c.app}`));
    if (owners.size < 2) continue;
    for (const c of group) {
      if (!c.selected) continue;
      const others = group
        .filter((o) => `${o.env}/${o.app}` !== `${c.env}/${c.app}`)
        .map((o) => `app "${o.app}" of environment "${o.env}" (${formatRef(locate(o.doc, o.path))})`)
        .join(', ');
      const sameApp = group.every((o) => o.app === c.app);
      const hint = sameApp ? `; give the app its own hosts in each environment (spec.apps.${c.app}.hosts of the Environment)` : '';
      issues.push(issueAt(c.doc, c.path, `host ${host} of app "${c.app}" in environment "${c.env}" is also claimed by ${others}; one host name routes to one app${hint}`));
    }
  }
}
