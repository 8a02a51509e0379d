/**
 * `spec.helm` of an App with its environment entry's override → the `helm` of the desired app: release name, values
 * merged (the entry's over the App's), values files resolved to repository paths (symlinks resolved, inside the
 * repository, present) with a digest of their contents, so a changed values file re-renders even outside the chart.
 * Reads the values files (stat and content), as render reads the documents.
 */
import { createHash } from 'node:crypto';
import { readFileSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parse } from 'yaml';
import type { DesiredApp, HelmSpec } from '../core/model.js';
import type { Issue } from '../core/types.js';
import { isInside, toRepoPath, type ParsedDoc } from './load.js';
import { issueAt, type PathSegment } from './positions.js';
import type { AppDocument, AppOverrides } from './schema.js';

type AppSpec = AppDocument['spec'];

/** Helm's merge of a later values file over an earlier one: maps merge key by key, anything else replaces. */
export function mergeValues(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isPlainMap(b) && isPlainMap(v) ? mergeValues(b, v) : v;
  }
  return out;
}

function isPlainMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function helmForm(
  root: string,
  app: { name: string; doc: ParsedDoc; spec: AppSpec },
  env: { name: string; doc: ParsedDoc; override?: AppOverrides['helm'] },
  issues: Issue[],
): HelmSpec | undefined {
  const own = app.spec.helm;
  const ov = env.override;
  if (own === undefined && ov === undefined) return undefined;
  const chart = ov?.chart ?? own?.chart;
  const appAt: PathSegment[] = ['spec', 'helm'];
  const envAt: PathSegment[] = ['spec', 'apps', app.name, 'helm'];
  if (chart !== undefined && app.spec.manifests !== undefined) {
    const [doc, at] = ov?.chart !== undefined ? [env.doc, envAt] : [app.doc, appAt];
    issues.push(issueAt(doc, [...at, 'chart'], `App "${app.name}": set either "manifests" (a chart directory) or "helm.chart" (a remote chart), not both`));
  }
  if (chart === undefined && app.spec.manifests === undefined) {
    issues.push(issueAt(app.doc, appAt, `App "${app.name}": spec.helm needs a chart: set spec.manifests to a chart directory (with a Chart.yaml) or spec.helm.chart to a remote chart`, 'key'));
  }
  // Values files are relative to the chart directory (for a remote chart: to the App's file).
  const appDir = dirname(join(root, app.doc.file));
  const base = app.spec.manifests !== undefined ? resolve(appDir, app.spec.manifests) : appDir;
  let realRoot: string;
  try {
    realRoot = realpathSync(root);
  } catch {
    realRoot = root;
  }
  const files: string[] = [];
  const hash = createHash('sha256');
  const add = (doc: ParsedDoc, at: PathSegment[], list: string[] | undefined) =>
    (list ?? []).forEach((f, i) => {
      const where = [...at, 'valuesFiles', i];
      const abs = resolve(base, f);
      if (!isInside(root, abs)) {
        issues.push(issueAt(doc, where, `App "${app.name}": values file "${f}" resolves to ${abs}, outside the repository; keep values files inside the repository`));
        return;
      }
      let real: string;
      let content: Buffer;
      try {
        real = realpathSync(abs);
        content = readFileSync(real);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const why = code === 'ENOENT' ? 'does not exist' : code === 'EISDIR' ? 'is a directory' : `cannot be read (${code ?? 'error'})`;
        issues.push(issueAt(doc, where, `App "${app.name}": values file "${f}" (${toRepoPath(root, abs)}) ${why}; values files are relative to the chart directory`));
        return;
      }
      if (!isInside(realRoot, real)) {
        issues.push(issueAt(doc, where, `App "${app.name}": values file "${f}" is a symlink to ${real}, outside the repository; keep values files inside the repository`));
        return;
      }
      const rel = toRepoPath(realRoot, real);
      files.push(rel);
      hash.update(`${rel}\0${content.length}\0`).update(content);
    });
  add(app.doc, appAt, own?.valuesFiles);
  add(env.doc, envAt, ov?.valuesFiles);
  const out: HelmSpec = {
    releaseName: ov?.releaseName ?? own?.releaseName ?? app.name,
    values: mergeValues(own?.values ?? {}, ov?.values ?? {}),
    valuesFiles: files,
  };
  if (files.length) out.valuesDigest = `sha256:${hash.digest('hex')}`;
  if (chart !== undefined) out.chart = { ...chart };
  if ((ov?.tests ?? own?.tests) === 'afterSync') out.tests = 'afterSync';
  return out;
}

/**
 * The version a Helm app shows when neither the App nor the environment declares one: the remote chart's pinned
 * version, or the `version` of the chart directory's Chart.yaml. Undefined for other apps (they show the revision).
 */
export function chartVersionOf(app: Pick<DesiredApp, 'helm' | 'manifests' | 'artifact'>): string | undefined {
  if (app.helm?.chart) return app.helm.chart.version;
  if (!app.manifests || !app.artifact.path) return undefined;
  try {
    const chart = parse(readFileSync(join(app.artifact.path, 'Chart.yaml'), 'utf8')) as { version?: unknown } | null;
    return typeof chart?.version === 'string' || typeof chart?.version === 'number' ? String(chart.version) : undefined;
  } catch {
    return undefined; // not a chart directory, or Chart.yaml unreadable: helm reports that when it renders
  }
}
