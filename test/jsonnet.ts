/**
 * Tests with the real go-jsonnet CLI: `scripts/tools.sh` builds it and `eval "$(scripts/tools.sh env)"` exports
 * KEELSON_JSONNET_BIN. Without it a suite is skipped with the reason, except in CI (CI set), where it fails.
 */
import { existsSync } from 'node:fs';
import { describe, it } from 'vitest';

export function jsonnetUnavailable(): string | undefined {
  const bin = process.env.KEELSON_JSONNET_BIN;
  if (bin && existsSync(bin)) return undefined;
  return 'no jsonnet CLI: run `eval "$(scripts/tools.sh env)"` (KEELSON_JSONNET_BIN is not set)';
}

export function jsonnetSuite(name: string, body: () => void): void {
  const why = jsonnetUnavailable();
  const suite = why && !process.env.CI ? describe.skip : describe;
  suite(`${name}${why ? ` (${why})` : ''}`, () => {
    if (why) {
      it('can run here', () => {
        throw new Error(`the Jsonnet suite must run in CI: ${why}`);
      });
      return;
    }
    body();
  });
}

/** A guestbook-like Jsonnet app: top-level arguments, an external variable and a library found through -J. */
export const guestbookJsonnet = {
  'apps/guestbook/main.jsonnet': `local params = import 'params.libsonnet';
local labels = import 'labels.libsonnet';
function(replicas, name='guestbook-ui') [
  {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: name, labels: labels.of(name) },
    spec: {
      replicas: replicas,
      selector: { matchLabels: labels.of(name) },
      template: {
        metadata: { labels: labels.of(name) },
        spec: { containers: [{ name: name, image: params.image, env: [{ name: 'TIER', value: std.extVar('tier') }] }] },
      },
    },
  },
  {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: name },
    spec: { selector: labels.of(name), ports: [{ port: params.port, targetPort: params.port }] },
  },
]
`,
  'apps/guestbook/params.libsonnet': `{ image: 'registry.example/guestbook-ui:0.2', port: 80 }\n`,
  'lib/jsonnet/labels.libsonnet': `{ of(name):: { app: name } }\n`,
};
