/**
 * Helm charts from an OCI registry, read with the distribution API (no helm CLI): the manifest of tag `version`
 * (a `+` in the version is `_` in the tag, as `helm push` writes it), then its chart layer
 * `application/vnd.cncf.helm.chart.content.v1.tar+gzip`, verified against the layer digest. Anonymous bearer tokens
 * (ghcr.io, Docker Hub) are asked for when the registry challenges; no credentials are sent.
 */
import { createHash } from 'node:crypto';
import { TerminalError } from '../../core/errors.js';
import { httpGet, isLoopbackHost, parseRemoteUrl, statusError, type HttpAnswer } from './chart-http.js';
import { listVersions } from './chart-index.js';

export const CHART_LAYER_MEDIA_TYPE = 'application/vnd.cncf.helm.chart.content.v1.tar+gzip';
const MANIFEST_ACCEPT = 'application/vnd.oci.image.manifest.v1+json';

export interface OciChartRef {
  /** `oci://host[:port]/path/to/chart` */
  url: string;
  version: string;
}

export interface PulledOciChart {
  /** `sha256:…` of the manifest, as `helm push` and `helm pull` print it. */
  manifestDigest: string;
  /** `sha256:…` of the chart layer: the package (.tgz) itself. */
  packageDigest: string;
  body: Buffer;
}

export interface PullOptions {
  signal?: AbortSignal;
  timeoutMs: number;
  maxBytes: number;
  /** Checked as soon as the manifest is read, before the chart layer is downloaded. */
  expectManifestDigest?: string;
  onWrongDigest: (actual: string) => Error;
}

/** Splits `oci://host/path/chart` into registry base URL and repository (`path/chart`). */
export function parseOciUrl(raw: string): { base: URL; repository: string; name: string } {
  const url = parseRemoteUrl(raw, 'OCI chart', ['oci:']);
  if (url.search || url.hash) throw new TerminalError(`OCI chart ${raw}: a query or fragment is not allowed`);
  const repository = url.pathname.replace(/^\/+|\/+$/g, '');
  if (!/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(repository)) {
    throw new TerminalError(`OCI chart ${raw}: expected oci://registry/path/to/chart (lower-case repository path)`);
  }
  // Plain HTTP only to loopback registries, as `helm --plain-http` would be used in a test.
  const base = new URL(`${isLoopbackHost(url.hostname) ? 'http' : 'https'}://${url.host}`);
  return { base, repository, name: repository.split('/').pop()! };
}

export function ociTag(version: string): string {
  return version.replace(/\+/g, '_');
}

export async function pullOciChart(ref: OciChartRef, o: PullOptions): Promise<PulledOciChart> {
  const { base, repository } = parseOciUrl(ref.url);
  const what = `chart ${ref.url} version ${ref.version}`;
  const client = new RegistryClient(base, repository, o);

  const manifestRes = await client.get(`/v2/${repository}/manifests/${encodeURIComponent(ociTag(ref.version))}`, MANIFEST_ACCEPT, 4 * 1024 ** 2, `${what}: manifest`);
  if (manifestRes.status === 404) {
    throw new TerminalError(`${what} not found in ${base.host}/${repository}; available: ${await client.tags()}`);
  }
  if (manifestRes.status !== 200) throw statusError(`${what}: manifest`, manifestRes.status);
  const manifestDigest = sha256(manifestRes.body);
  if (o.expectManifestDigest && o.expectManifestDigest !== manifestDigest) throw o.onWrongDigest(manifestDigest);

  let manifest: { layers?: { mediaType?: string; digest?: string; size?: number }[] };
  try {
    manifest = JSON.parse(manifestRes.body.toString('utf8'));
  } catch {
    throw new TerminalError(`${what}: the manifest is not JSON`);
  }
  const layer = manifest.layers?.find((l) => l.mediaType === CHART_LAYER_MEDIA_TYPE);
  if (!layer?.digest || !/^sha256:[0-9a-f]{64}$/.test(layer.digest)) {
    throw new TerminalError(`${what}: not a Helm chart (the manifest has no ${CHART_LAYER_MEDIA_TYPE} layer)`);
  }
  if (typeof layer.size === 'number' && layer.size > o.maxBytes) {
    throw new TerminalError(`${what}: the chart is ${layer.size} bytes, over the ${o.maxBytes} byte limit`);
  }

  const blob = await client.get(`/v2/${repository}/blobs/${layer.digest}`, '*/*', o.maxBytes, `${what}: chart layer`);
  if (blob.status !== 200) throw statusError(`${what}: chart layer ${layer.digest}`, blob.status);
  const packageDigest = sha256(blob.body);
  if (packageDigest !== layer.digest) {
    throw new TerminalError(`${what}: the chart layer's content has digest ${packageDigest}, not ${layer.digest} as the manifest says; refused`);
  }
  return { manifestDigest, packageDigest, body: blob.body };
}

/** GETs against one repository of a registry, answering a Bearer challenge with an anonymous token once. */
class RegistryClient {
  private token: string | undefined;
  private triedToken = false;

  constructor(
    private readonly base: URL,
    private readonly repository: string,
    private readonly o: PullOptions,
  ) {}

  async get(path: string, accept: string, maxBytes: number, what: string): Promise<HttpAnswer> {
    const request = () =>
      httpGet(new URL(path, this.base), {
        what,
        signal: this.o.signal,
        timeoutMs: this.o.timeoutMs,
        maxBytes,
        headers: { accept, ...(this.token ? { authorization: `Bearer ${this.token}` } : {}) },
      });
    let res = await request();
    if (res.status === 401 && !this.triedToken) {
      this.triedToken = true;
      this.token = await this.anonymousToken(res.headers.get('www-authenticate') ?? '', what);
      if (this.token) res = await request();
    }
    return res;
  }

  /** The tags of the repository, newest-looking first, for a "not found" message. */
  async tags(): Promise<string> {
    try {
      const res = await this.get(`/v2/${this.repository}/tags/list`, 'application/json', 4 * 1024 ** 2, 'tags');
      if (res.status !== 200) return `none (the registry has no repository ${this.repository})`;
      const tags = (JSON.parse(res.body.toString('utf8')) as { tags?: unknown }).tags;
      return Array.isArray(tags) && tags.length ? listVersions(tags.map(String).map((t) => t.replace(/_/g, '+'))) : 'none';
    } catch {
      return 'unknown (the tag list could not be read)';
    }
  }

  private async anonymousToken(challenge: string, what: string): Promise<string | undefined> {
    const m = /^Bearer\s+(.*)$/i.exec(challenge.trim());
    if (!m) return undefined;
    const params = Object.fromEntries([...m[1].matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1].toLowerCase(), x[2]]));
    if (!params.realm) return undefined;
    const realm = parseRemoteUrl(params.realm, `${what}: token service`);
    if (params.service) realm.searchParams.set('service', params.service);
    realm.searchParams.set('scope', params.scope ?? `repository:${this.repository}:pull`);
    const res = await httpGet(realm, { what: `${what}: anonymous token`, signal: this.o.signal, timeoutMs: this.o.timeoutMs, maxBytes: 1024 ** 2 });
    if (res.status !== 200) throw statusError(`${what}: anonymous token`, res.status);
    try {
      const body = JSON.parse(res.body.toString('utf8')) as { token?: string; access_token?: string };
      return body.token ?? body.access_token;
    } catch {
      throw new TerminalError(`${what}: the token service answered something that is not JSON`);
    }
  }
}

function sha256(body: Buffer): string {
  return `sha256:${createHash('sha256').update(body).digest('hex')}`;
}
