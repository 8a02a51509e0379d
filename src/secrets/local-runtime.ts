/**
 * Secrets on the local target. Release directories are immutable and shared, so decrypted files go to a private
 * per-app, per-template directory in the state dir instead:
 *
 *   <state>/secrets/<env>/<app>/<template>/files/<path>     decrypted files (0600; dirs 0700) = $KEELSON_SECRETS_DIR
 *   <state>/secrets/<env>/<app>/<template>/sources/<hash>   ciphertext copies of the SOPS files (as in git)
 *
 * Env values are kept in memory only. A replica restarted after an engine restart gets them again by decrypting
 * the ciphertext copies (the checkout of that revision may be gone). Each template has its own directory, so during
 * a rolling update old replicas keep the old files while new ones read the new.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { DesiredApp } from '../core/model.js';
import type { Keyring } from './age-keys.js';
import { checkoutReader, secretFilesOf, secretValuesFor, type SecretValues } from './resolve.js';

export const SECRETS_DIR_VAR = 'KEELSON_SECRETS_DIR';

export interface LocalSecretsOptions {
  stateDir: string;
  /** Default: from KEELSON_AGE_KEY / KEELSON_AGE_KEY_FILE at each use. */
  keyring?: Keyring;
}

const sourceName = (repoPath: string) => createHash('sha256').update(repoPath).digest('hex').slice(0, 32);

export class LocalSecrets {
  private readonly envs = new Map<string, Record<string, string>>();

  constructor(private readonly o: LocalSecretsOptions) {}

  private appDir(env: string, app: string): string {
    return join(this.o.stateDir, 'secrets', env, app);
  }

  private templateDir(env: string, app: string, template: string): string {
    return join(this.appDir(env, app), template);
  }

  /** Before a rollout: decrypts the app's secrets from the checkout and writes its files. No-op without secrets. */
  async prepare(app: DesiredApp, template: string, checkoutDir: string): Promise<void> {
    if (!app.secrets) return;
    const values = await secretValuesFor(app, checkoutReader(checkoutDir), { keyring: this.o.keyring });
    const dir = this.templateDir(app.env, app.name, template);
    await mkdir(join(this.o.stateDir, 'secrets'), { recursive: true, mode: 0o700 });
    await mkdir(join(dir, 'sources'), { recursive: true, mode: 0o700 });
    for (const file of secretFilesOf(app)) {
      await atomicWrite(join(dir, 'sources', sourceName(file)), await readFile(join(checkoutDir, file)));
    }
    await this.materialize(app, template, values);
  }

  /** The secret env vars of a replica about to start (and $KEELSON_SECRETS_DIR when it has secret files). */
  async envFor(spec: DesiredApp, template: string): Promise<Record<string, string>> {
    if (!spec.secrets) return {};
    const key = `${spec.env}/${spec.name}/${template}`;
    const hit = this.envs.get(key);
    if (hit) return hit;
    // After an engine restart: decrypt again from the ciphertext kept for this template.
    const sources = join(this.templateDir(spec.env, spec.name, template), 'sources');
    const values = await secretValuesFor(spec, (p) => readFile(join(sources, sourceName(p)), 'utf8'), { keyring: this.o.keyring });
    return this.materialize(spec, template, values);
  }

  private async materialize(app: DesiredApp, template: string, values: SecretValues): Promise<Record<string, string>> {
    const dir = join(this.templateDir(app.env, app.name, template), 'files');
    const env: Record<string, string> = { ...values.env };
    if (values.files.length) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      for (const f of values.files) {
        const target = join(dir, f.path);
        await mkdir(dirname(target), { recursive: true, mode: 0o700 });
        await atomicWrite(target, f.content);
      }
      env[SECRETS_DIR_VAR] = dir;
    }
    this.envs.set(`${app.env}/${app.name}/${template}`, env);
    return env;
  }

  /** A decrypted secret file of a prepared template (e.g. a static TLS certificate), read back by the target. */
  readFile(app: DesiredApp, template: string, path: string): Promise<string> {
    return readFile(join(this.templateDir(app.env, app.name, template), 'files', path), 'utf8');
  }

  /** After a successful rollout: forgets every other template of the app (its replicas are gone). */
  async keepOnly(env: string, app: string, template: string): Promise<void> {
    for (const k of this.envs.keys()) if (k.startsWith(`${env}/${app}/`) && k !== `${env}/${app}/${template}`) this.envs.delete(k);
    const names = await readdir(this.appDir(env, app)).catch(() => [] as string[]);
    await Promise.all(names.filter((n) => n !== template).map((n) => rm(join(this.appDir(env, app), n), { recursive: true, force: true })));
  }

  /** The app was deleted: its secrets go too. */
  async remove(env: string, app: string): Promise<void> {
    for (const k of this.envs.keys()) if (k.startsWith(`${env}/${app}/`)) this.envs.delete(k);
    await rm(this.appDir(env, app), { recursive: true, force: true });
  }
}

async function atomicWrite(path: string, content: Buffer): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, content, { mode: 0o600 });
  await rename(tmp, path);
}
