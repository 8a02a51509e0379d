/** Shared vocabulary: the same words in code, logs, API, UI. */

export type SyncCode = 'Synced' | 'OutOfSync' | 'Failed' | 'Unknown';
export type HealthCode = 'Healthy' | 'Progressing' | 'Degraded' | 'Missing' | 'Suspended' | 'Unknown';
/** Outcome of applying one planned change. */
export type Action = 'created' | 'configured' | 'unchanged' | 'deleted' | 'skipped';

// Worst first; a parent's health is the worst of its children's.
const healthOrder: HealthCode[] = ['Degraded', 'Missing', 'Progressing', 'Unknown', 'Suspended', 'Healthy'];

export function isWorse(current: HealthCode, next: HealthCode): boolean {
  return healthOrder.indexOf(next) < healthOrder.indexOf(current);
}

export function worstHealth(codes: HealthCode[]): HealthCode {
  return codes.reduce<HealthCode>((acc, c) => (isWorse(acc, c) ? c : acc), 'Healthy');
}

/** Canonical key of an app in an environment: `env/app`. */
export function appKey(env: string, app: string): string {
  return `${env}/${app}`;
}

/** A problem in the ops repository, located for `file:line:col` output. */
export interface Issue {
  file: string; // relative to the repository root
  line: number; // 1-based
  col: number; // 1-based
  message: string;
}

export function formatIssue(i: Issue): string {
  return `${i.file}:${i.line}:${i.col}: ${i.message}`;
}
