/**
 * The manifests part of `keelson validate`: every Kubernetes app's manifests rendered offline by the very function the
 * Kubernetes target applies them with (`renderApp`: plain YAML, Kustomize, Jsonnet, and every format it learns), no
 * cluster involved. Apps whose rendered inputs are identical in several environments are rendered once. Errors are
 * placed at the `file:line:col` (or `file:line`, or `file`) the renderer names, else at the App.
 */
import type { DesiredApp, DesiredState } from '../core/model.js';
import { errorMessage } from '../core/errors.js';
import { ChartNotCachedError } from '../targets/kubernetes/chart-source.js';
import { renderApp, type HelmContext } from '../targets/kubernetes/render.js';

/** A problem found rendering manifests; line and col only when the tool named them. */
export interface PlacedIssue {
  file: string;
  line?: number;
  col?: number;
  message: string;
}

/** What renderApp reads of an app: everything but where and for which environment it is declared. */
function inputsKey(app: DesiredApp): string {
  const { env: _e, dependsOn: _d, ...rest } = app;
  return JSON.stringify(rest);
}

/**
 * Renders each distinct (app, inputs) of the Kubernetes environments once. `skip` names App files that already have
 * problems (their desired state is not trustworthy). Local-target apps have no manifests: nothing to do for them.
 */
export async function checkManifests(
  desired: DesiredState,
  root: string,
  skip: Set<string> = new Set(),
  charts: Pick<HelmContext, 'chartCacheDir' | 'offline'> = {},
): Promise<{ issues: PlacedIssue[]; rendered: number; notes: string[] }> {
  const groups = new Map<string, { app: DesiredApp; envs: string[] }>();
  for (const env of desired.environments) {
    if (!('kubernetes' in env.target)) continue;
    for (const app of env.apps) {
      if ((!app.manifests && !app.helm?.chart) || skip.has(app.source.file)) continue;
      const key = inputsKey(app);
      const g = groups.get(key);
      if (g) g.envs.push(env.name);
      else groups.set(key, { app, envs: [env.name] });
    }
  }
  const issues: PlacedIssue[] = [];
  const notes: string[] = [];
  // Sequential: each render may run a child process (kustomize, jsonnet); a machine's cores are shared.
  for (const { app, envs } of groups.values()) {
    try {
      await renderApp(app, root, charts);
    } catch (err) {
      if (err instanceof ChartNotCachedError) {
        // Offline: a remote chart the engine has not fetched yet is not a problem of the repository.
        notes.push(`note: App ${app.name}: remote chart ${err.message}; not rendered (keelson validate --fetch-charts downloads it)`);
        continue;
      }
      const where = `(App ${app.name} in environment${envs.length === 1 ? '' : 's'} ${envs.join(', ')})`;
      issues.push(place(errorMessage(err), app, where));
    }
  }
  return { issues, rendered: groups.size - notes.length, notes };
}

const POSITION = /^([^\s:]+):(\d+)(?::(\d+))?: ([\s\S]*)$/;
const FILE = /^([^\s:]+\.(?:ya?ml|json|jsonnet|libsonnet)|[^\s:]*Kustomization)(?: \([^)]*\))?(?::\d+)?: ([\s\S]*)$/;

/** A renderer's message → where it points; positions it does not name are left out, never guessed. */
export function place(message: string, app: DesiredApp, where: string): PlacedIssue {
  const p = POSITION.exec(message);
  if (p) {
    // The zero-object check names the App itself; its message already says which app.
    const suffix = p[4].startsWith(`App ${app.name}:`) ? '' : ` ${where}`;
    return { file: p[1], line: Number(p[2]), ...(p[3] ? { col: Number(p[3]) } : {}), message: `${p[4]}${suffix}` };
  }
  const f = FILE.exec(message);
  if (f) return { file: f[1], message: `${f[2]} ${where}` };
  const s = app.source;
  return { file: s.file, line: s.line, col: s.col, message: `${message} ${where}` };
}
