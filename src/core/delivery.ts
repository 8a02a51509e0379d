/**
 * The desired model of safe delivery: hooks around a sync, sync windows and notifications.
 * Plain, serializable data; no I/O. Kept off DesiredApp so that changing a hook never restarts a process.
 */

export type HookPhase = 'preSync' | 'postSync' | 'syncFailed' | 'preDelete';
export const HOOK_PHASES: readonly HookPhase[] = ['preSync', 'postSync', 'syncFailed', 'preDelete'];

export interface HookStepBase {
  /** Shown in events and messages; defaults to `<phase>[i]`. */
  name?: string;
  timeoutSeconds: number;
  /** Extra attempts after a failure. */
  retries: number;
  retryDelaySeconds: number;
}

export interface ExecHookStep extends HookStepBase {
  exec: { command: string[] };
}

export interface HttpHookStep extends HookStepBase {
  /** `{port}`, `{version}`, `{env}` and `{app}` in the URL are replaced. */
  http: { url: string; method: string; expectStatus: number[]; body?: string; headers: Record<string, string> };
}

export interface BackupHookStep extends HookStepBase {
  backup: {
    postgres: {
      /** A postgres:// URL, or the name of one of the app's environment variables that holds it. */
      databaseUrl?: string;
      env?: string;
    };
    /** Backups kept per app; older ones are deleted. */
    retain: number;
  };
}

export type HookStep = ExecHookStep | HttpHookStep | BackupHookStep;
export type HookSet = Partial<Record<HookPhase, HookStep[]>>;

export interface SyncWindow {
  kind: 'allow' | 'deny';
  /** Five-field cron expression (minute hour day-of-month month day-of-week) at which the window opens. */
  schedule: string;
  /** How long the window stays open, in seconds. */
  durationSeconds: number;
  /** `UTC` or `local` (the engine's time zone). */
  timeZone: 'UTC' | 'local';
  /** A manual `keelson sync` may run while this window denies syncs. */
  manualSync: boolean;
}

export type NotificationTrigger = 'syncStarted' | 'syncSucceeded' | 'syncFailed' | 'healthDegraded' | 'driftHealed' | 'rolledBack' | 'certificateFailed';
export const NOTIFICATION_TRIGGERS: readonly NotificationTrigger[] = ['syncStarted', 'syncSucceeded', 'syncFailed', 'healthDegraded', 'driftHealed', 'rolledBack', 'certificateFailed'];

export interface NotificationSpec {
  name: string;
  /** `webhook`: JSON body; `slack`: Slack-compatible incoming-webhook `{text}`. */
  type: 'webhook' | 'slack';
  /** The URL, or the name of an environment variable of the engine holding it (webhook URLs are often secrets). */
  url?: string;
  urlEnv?: string;
  headers: Record<string, string>;
  triggers: NotificationTrigger[];
  /** The same notification (trigger, app, revision, result) is not sent again within this many seconds. */
  suppressRepeatsSeconds: number;
  /** Apps this notification is about; all when empty. */
  apps: string[];
}
