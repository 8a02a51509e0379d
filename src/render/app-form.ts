/**
 * The forms an App comes in and what each target needs of it: a process (artifact + run.command, local target), an
 * image rendered to a Deployment, or a directory of manifests (Kubernetes target). Pure; used by render.
 */
import { dirname, join, relative, resolve } from 'node:path';
import type { Artifact, DesiredApp } from '../core/model.js';
import type { Issue } from '../core/types.js';
import type { ParsedDoc } from './load.js';
import { realPath, resolvesInside } from '../source/inside.js';
import { formatRef, issueAt, locate } from './positions.js';
import type { AppDocument } from './schema.js';

type AppSpec = AppDocument['spec'];

/** `ghcr.io/acme/web` + `1.2.0` → `ghcr.io/acme/web:1.2.0`; `{version}` is replaced where written. */
export function imageWithVersion(image: string, version: string): string {
  if (image.includes('{version}')) return image.replaceAll('{version}', version);
  return `${image}:${version}`;
}

/** The Kubernetes fields of a desired app (`image`, `manifests`); the manifests directory becomes `artifact.path`. */
export function kubernetesForm(
  root: string,
  doc: ParsedDoc,
  spec: AppSpec,
  version: string,
  explicitReplicas: boolean,
): { artifact?: Artifact; image?: string; manifests?: DesiredApp['manifests'] } {
  const out: { artifact?: Artifact; image?: string; manifests?: DesiredApp['manifests'] } = {};
  if (spec.manifests !== undefined) {
    const abs = manifestsPath(root, doc, spec.manifests);
    out.artifact = { path: abs };
    out.manifests = { dir: relative(root, abs) || '.', replicas: explicitReplicas };
    // With manifests, `image` names the image (without tag) whose tag the version sets.
    if (spec.image !== undefined) out.image = spec.image.includes('{version}') ? imageWithVersion(spec.image, version) : spec.image;
  } else if (spec.image !== undefined) {
    out.image = imageWithVersion(spec.image, version);
  }
  return out;
}

function manifestsPath(root: string, doc: ParsedDoc, dir: string): string {
  return resolve(dirname(join(root, doc.file)), dir);
}

/** Whether the App or the environment's override writes `replicas` (else a manifests app keeps its own). */
export function hasExplicitReplicas(doc: ParsedDoc, override: number | undefined): boolean {
  return override !== undefined || doc.doc.hasIn(['spec', 'replicas']);
}

/**
 * What each target needs of an App listed by an environment, reported at the environment's entry for the app and
 * naming where the App is declared.
 */
export function checkTargetRequirements(
  root: string,
  target: { kubernetes?: unknown },
  env: { name: string; doc: ParsedDoc },
  app: { name: string; doc: ParsedDoc; spec: AppSpec },
  issues: Issue[],
): void {
  const where = formatRef(locate(app.doc, ['spec']));
  const at = (message: string) => issues.push(issueAt(env.doc, ['spec', 'apps', app.name], message, 'key'));
  const s = app.spec;
  if (target.kubernetes !== undefined) {
    if (s.image === undefined && s.manifests === undefined && s.helm?.chart === undefined) {
      at(`environment "${env.name}" runs on Kubernetes, but App "${app.name}" (${where}) has neither "image" nor "manifests"; add spec.image (a container image) or spec.manifests (a directory of Kubernetes YAML)`);
    }
    if (s.manifests !== undefined && !resolvesInside(root, manifestsPath(root, app.doc, s.manifests))) {
      const real = realPath(manifestsPath(root, app.doc, s.manifests));
      issues.push(issueAt(app.doc, ['spec', 'manifests'], `App "${app.name}": manifests directory "${s.manifests}" resolves to ${real}, outside the repository root ${root}; keep manifests inside the repository (no symlinks out of it)`));
    }
    return;
  }
  const missing: string[] = [];
  if (s.artifact === undefined) missing.push('"artifact" (a directory path or a .tar.gz url)');
  if (s.run.command === undefined) missing.push('"run.command" (the argv of the process)');
  if (missing.length > 0) {
    const k8s = s.image !== undefined || s.manifests !== undefined ? '; "image" and "manifests" are for environments with target kubernetes' : '';
    at(`environment "${env.name}" runs on the local target, but App "${app.name}" (${where}) has no ${missing.join(' and no ')}${k8s}`);
  }
}
