/**
 * `spec.secrets` of an App (and of an Environment's app override): which SOPS-encrypted files of the ops
 * repository an app reads, as environment variables or as files.
 */
import { z } from 'zod';

const EnvName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: 'must be an environment variable name (letters, digits, "_", not starting with a digit)' });
const SecretFile = z
  .string()
  .min(1)
  .describe('A SOPS-encrypted YAML, JSON or dotenv file, relative to this document, inside the repository');
/** Where a secret file lands below the app's secrets dir: relative, no "..". */
const RuntimePath = z
  .string()
  .min(1)
  .refine((p) => !p.startsWith('/') && !p.split('/').some((s) => s === '..' || s === '.' || s === ''), {
    error: 'must be a relative path below the secrets dir, without "..", "." or empty segments (e.g. config/tls.yaml)',
  });
const Key = z.string().min(1).describe('A top-level key of the decrypted file, or a dotted path into nested maps (db.password)');

export const SecretEnvSchema = z.strictObject({
  name: EnvName.describe('Environment variable the app gets'),
  file: SecretFile,
  key: Key,
});

export const SecretFileSchema = z.strictObject({
  file: SecretFile,
  path: RuntimePath.describe('Path below $KEELSON_SECRETS_DIR where the decrypted content is written (mode 0600)'),
  key: Key.optional().describe('Write only this value (e.g. a PEM certificate); absent: the whole decrypted file'),
});

export const SecretsSchema = z
  .strictObject({
    env: z.array(SecretEnvSchema).default([]).describe('Environment variables from secret values'),
    files: z.array(SecretFileSchema).default([]).describe('Files from decrypted secret files'),
  })
  .describe('SOPS + age encrypted secrets the app reads; decrypted only when it starts, never stored in plaintext');

export type SecretsSpec = z.output<typeof SecretsSchema>;
