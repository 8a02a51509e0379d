import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { EnginePolicy } from '../policy/policy.js';
import { policyFromConfig } from '../policy/config.js';
import type { DesiredState } from '../core/model.js';
import { ExitError } from '../core/errors.js';
import type { Issue } from '../core/types.js';
import { renderRepository } from '../render/index.js';
import type { PlacedIssue } from './validate-manifests.js';
import { KeyError, loadKeyring } from '../secrets/age-keys.js';
import { checkSecrets, secretFilesOf } from '../secrets/resolve.js';
import { parse } from './args.js';

/**
 * `keelson validate`: checks the working tree; every problem as `file:line:col: message`. Every Kubernetes app's
 * manifests are rendered offline (plain YAML, Kustomize, Jsonnet: what the target would apply), once per distinct
 * inputs. With an age identity
 * in the environment, every secret file the environments' apps use must also decrypt (MAC verified) and have the
 * keys they name; without one, a note says the secrets were not decrypted. Decrypted values are never printed.
 */
export async function validate(argv: string[]): Promise<void> {
  const { values } = parse(argv, { repo: { type: 'string' }, path: { type: 'string' }, 'state-dir': { type: 'string' }, 'fetch-charts': { type: 'boolean' }, 'skip-host-checks': { type: 'boolean' }, config: { type: 'string' } });
  const root = resolve(values.repo ?? '.');
  // With the engine's configuration, its policy's environment-level checks too (targets, clusters, kubeconfig
  // paths, namespaces), as the engine would make them.
  const policy = values.config ? readPolicy(values.config) : undefined;
  // Host checks (the users of `user:` exist here) are for the machine the engine runs on; skip them elsewhere.
  const { desired, issues } = await renderRepository({ root, path: values.path, hostChecks: !values['skip-host-checks'], ...(policy ? { policy } : {}) });
  const secrets = await validateSecrets(desired, root);
  // Manifests of Apps whose own file has problems are not rendered: their desired state is not trustworthy.
  // Loaded only for Kubernetes environments: local-target apps have no manifests, and validate stays quick for them.
  const manifests = desired.environments.some((e) => 'kubernetes' in e.target)
    ? await (await import('./validate-manifests.js')).checkManifests(desired, root, new Set(issues.map((i) => i.file)), {
        // Remote Helm charts come from the engine's chart cache; only --fetch-charts downloads what it lacks.
        chartCacheDir: join(resolve(values['state-dir'] ?? '.keelson'), 'charts'),
        offline: !values['fetch-charts'],
      })
    : { issues: [], rendered: 0, notes: [] as string[] };
  const all = sortPlaced([...issues, ...secrets.issues, ...manifests.issues]);
  for (const i of all) console.log(formatPlaced(i));
  if (secrets.note) console.log(secrets.note);
  for (const n of manifests.notes) console.log(n);
  if (all.length || secrets.error) {
    const summary = all.length ? `${all.length} problem${all.length === 1 ? '' : 's'} found` : '';
    throw new ExitError(1, [secrets.error, summary].filter(Boolean).join('\n'));
  }
  const apps = desired.environments.reduce((n, e) => n + e.apps.length, 0);
  // Apps with identical inputs in several environments are rendered once: the count is of distinct renders.
  const rendered = manifests.rendered ? `, ${manifests.rendered} distinct manifests rendered` : '';
  console.log(`ok: ${desired.environments.length} environment(s), ${apps} app deployment(s)${rendered}${secrets.ok ?? ''}`);
}

function readPolicy(file: string): EnginePolicy {
  try {
    const raw = (parseYaml(readFileSync(file, 'utf8')) as Record<string, unknown> | null) ?? {};
    return policyFromConfig(raw, file);
  } catch (err) {
    throw new ExitError(2, (err as Error).message.startsWith(file) ? (err as Error).message : `${file}: ${(err as Error).message}`);
  }
}

function formatPlaced(i: PlacedIssue): string {
  return `${i.file}${i.line !== undefined ? `:${i.line}` : ''}${i.col !== undefined ? `:${i.col}` : ''}: ${i.message}`;
}

function sortPlaced(issues: PlacedIssue[]): PlacedIssue[] {
  return [...issues].sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0)));
}

const keyHelp = 'set KEELSON_AGE_KEY_FILE to an age identity file (or KEELSON_AGE_KEY, SOPS_AGE_KEY_FILE, SOPS_AGE_KEY)';

/**
 * The secrets part of validate. Uses the identities `keelson secret decrypt` uses: the KEELSON_ variables, else
 * sops' own (the engine reads only the KEELSON_ ones).
 */
async function validateSecrets(desired: DesiredState, root: string): Promise<{ issues: Issue[]; note?: string; error?: string; ok?: string }> {
  const used = new Set(desired.environments.flatMap((e) => e.apps).flatMap(secretFilesOf));
  if (!used.size) return { issues: [] };
  let keyring;
  try {
    keyring = loadKeyring({ sopsFallback: true });
  } catch (err) {
    // KeyError messages name the variable and file, never a key.
    return { issues: [], error: `cannot check that secret files decrypt: ${err instanceof KeyError ? err.message : 'cannot load the age identities'}` };
  }
  const n = `${used.size} secret file${used.size === 1 ? '' : 's'}`;
  if (!keyring.size) return { issues: [], note: `note: ${n} not decrypted: no age key is set; to check them, ${keyHelp}` };
  const issues = await checkSecrets(desired, root, keyring);
  return { issues, ok: `, ${n} decrypted with ${keyring.origin}` };
}
