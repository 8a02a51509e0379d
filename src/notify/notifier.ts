/**
 * Notifications: subscribes to the event bus and posts to each Environment's `spec.notifications` — a generic
 * webhook (JSON) or a Slack-compatible incoming webhook (`{text}`) — for the triggers it asks for, with repeat
 * suppression. Never logs a destination URL (webhook URLs are secrets); failures become `notification.failed` events.
 */
import type { NotificationSpec, NotificationTrigger } from '../core/delivery.js';
import type { DesiredEnvironment } from '../core/model.js';
import { errorMessage } from '../core/errors.js';
import type { EventBus, Stamped } from '../core/events.js';
import type { Logger } from '../log.js';

export interface NotificationBody {
  event: NotificationTrigger;
  env: string;
  app: string | null;
  revision: string | null;
  versions: Record<string, string>;
  result: string | null;
  message: string;
  link: string | null;
  time: string;
}

export interface NotifierOptions {
  bus: EventBus;
  log: Logger;
  /** The environment as desired now (its notifications and app versions). */
  environment: (env: string) => DesiredEnvironment | undefined;
  /** Where a person looks for details, e.g. the API's status URL. */
  link?: (env: string, app: string | null) => string;
  timeoutMs?: number;
  /** Attempts per notification (1 + retries). Default 3. */
  attempts?: number;
  now?: () => number;
  /** Engine environment variables (`urlEnv`). Default process.env. */
  vars?: Record<string, string | undefined>;
}

export class Notifier {
  private readonly sent = new Map<string, number>();
  /** Apps with a drift not yet healed: `env/app` → what drifted. */
  private readonly drifted = new Map<string, string>();
  private readonly queues = new Map<string, Promise<void>>();
  private off?: () => void;

  constructor(private readonly o: NotifierOptions) {}

  start(): void {
    this.off = this.o.bus.subscribe((e) => this.onEvent(e));
  }

  stop(): void {
    this.off?.();
  }

  /** Resolves when every notification queued so far was delivered or given up. */
  async idle(): Promise<void> {
    await Promise.all(this.queues.values());
  }

  private onEvent(e: Stamped): void {
    switch (e.type) {
      case 'sync.started':
        return this.notify('syncStarted', e.env, null, e.revision, null, `sync of ${e.env} started: ${e.changes} change${e.changes === 1 ? '' : 's'}`);
      case 'sync.completed':
        return this.notify(e.result === 'Succeeded' ? 'syncSucceeded' : 'syncFailed', e.env, null, e.revision, e.result, e.message);
      case 'health.changed':
        if (e.to === 'Degraded') this.notify('healthDegraded', e.env, e.app, null, e.to, e.message || `${e.app} is Degraded (was ${e.from})`);
        if (e.to === 'Healthy') this.healed(e.env, e.app, null);
        return;
      case 'app.rolledBack':
        return this.notify('rolledBack', e.env, e.app, e.revision, 'Failed', e.message);
      case 'drift.detected':
        this.drifted.set(`${e.env}/${e.app}`, e.message);
        return;
      case 'app.changed':
        return this.healed(e.env, e.app, e.revision);
      case 'replica.ready':
        if (e.ready) this.healed(e.env, e.app, null);
        return;
      case 'certificate.failed':
        return this.notify('certificateFailed', e.env, e.app, null, 'Failed', `${e.renewal ? 'renewal' : 'first order'} of the certificate for ${e.hosts.join(', ')} failed: ${e.message}; retrying at ${e.retryAt}`);
    }
  }

  private healed(env: string, app: string, revision: string | null): void {
    const what = this.drifted.get(`${env}/${app}`);
    if (what === undefined) return;
    this.drifted.delete(`${env}/${app}`);
    this.notify('driftHealed', env, app, revision, 'Healthy', `drift of ${app} healed: ${what}`);
  }

  private notify(trigger: NotificationTrigger, env: string, app: string | null, revision: string | null, result: string | null, message: string): void {
    const desired = this.o.environment(env);
    const specs = desired?.notifications ?? [];
    if (specs.length === 0) return;
    const versions = Object.fromEntries((desired?.apps ?? []).map((a) => [a.name, a.version]));
    const now = this.o.now?.() ?? Date.now();
    for (const n of specs) {
      if (!n.triggers.includes(trigger)) continue;
      if (app && n.apps.length && !n.apps.includes(app)) continue;
      const key = `${env}|${n.name}|${trigger}|${app ?? ''}|${revision ?? ''}`;
      const last = this.sent.get(key);
      if (last !== undefined && now - last < n.suppressRepeatsSeconds * 1000) continue;
      this.sent.set(key, now);
      const body: NotificationBody = {
        event: trigger,
        env,
        app,
        revision,
        versions: app && versions[app] ? { [app]: versions[app] } : versions,
        result,
        message,
        link: this.o.link?.(env, app) ?? null,
        time: new Date(now).toISOString(),
      };
      this.enqueue(env, n, body);
    }
    if (this.sent.size > 10_000) this.sent.clear();
  }

  private enqueue(env: string, n: NotificationSpec, body: NotificationBody): void {
    const q = `${env}/${n.name}`;
    const next = (this.queues.get(q) ?? Promise.resolve()).then(() => this.deliver(env, n, body));
    this.queues.set(q, next);
    void next.finally(() => {
      if (this.queues.get(q) === next) this.queues.delete(q);
    });
  }

  private async deliver(env: string, n: NotificationSpec, body: NotificationBody): Promise<void> {
    const url = n.url ?? (this.o.vars ?? process.env)[n.urlEnv!];
    if (!url) return this.failed(env, n, body, `environment variable ${n.urlEnv} of the engine is not set`);
    const payload = n.type === 'slack' ? { text: slackText(body) } : body;
    const attempts = this.o.attempts ?? 3;
    let why = '';
    for (let i = 0; i < attempts; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 500 * 2 ** (i - 1)));
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': 'keelson-notifier', ...n.headers },
          body: JSON.stringify(payload),
          signal: AbortSignal.timeout(this.o.timeoutMs ?? 5000),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) {
          this.o.log.debug({ env, notification: n.name, trigger: body.event }, 'notification sent');
          return;
        }
        why = `answered ${res.status}`;
        if (res.status < 500 && res.status !== 429) break;
      } catch (err) {
        const e = err as Error & { cause?: { code?: string } };
        why = e.name === 'TimeoutError' ? 'timed out' : (e.cause?.code ?? errorMessage(err));
      }
    }
    this.failed(env, n, body, why);
  }

  private failed(env: string, n: NotificationSpec, body: NotificationBody, message: string): void {
    this.o.log.warn({ env, notification: n.name, trigger: body.event, err: message }, 'notification failed');
    this.o.bus.publish({ type: 'notification.failed', env, notification: n.name, trigger: body.event, message });
  }
}

const icons: Record<NotificationTrigger, string> = {
  syncStarted: ':arrows_counterclockwise:',
  syncSucceeded: ':white_check_mark:',
  syncFailed: ':x:',
  healthDegraded: ':warning:',
  driftHealed: ':adhesive_bandage:',
  certificateFailed: ':lock:',
  rolledBack: ':rewind:',
};

/** One Slack message: what, where, which revision, and the details. */
export function slackText(b: NotificationBody): string {
  const subject = b.app ? `${b.app} in ${b.env}` : b.env;
  const rev = b.revision ? ` at \`${b.revision.slice(0, 7)}\`` : '';
  const versions = Object.entries(b.versions).map(([a, v]) => `${a} ${v}`).join(', ');
  const link = b.link ? ` <${b.link}|details>` : '';
  return `${icons[b.event]} *${b.event}* ${subject}${rev}${b.result ? ` (${b.result})` : ''}${versions ? ` — ${versions}` : ''}\n${b.message}${link}`;
}
