/** A small ops repository (git) with apps web and worker and environments staging and prod, for CLI tests. */
import { join } from 'node:path';
import { commitAll, git, gitInit, writeTree } from './helpers.js';

export function opsRepo(dir: string, o: { webPort?: number; prodPort?: number } = {}): string {
  writeTree(dir, {
    'apps/web.yaml': `apiVersion: keelson.dev/v1alpha1
kind: App
metadata:
  name: web
spec:
  version: "1.0.0"
  artifact:
    path: ../releases/web-{version}
  run:
    command: ["node", "server.js"]
    env:
      GREETING: hi
  port: ${o.webPort ?? 18080}
---
apiVersion: keelson.dev/v1alpha1
kind: App
metadata:
  name: worker
spec:
  version: "1.0.0"
  artifact:
    path: ../releases/worker
  run:
    command: ["node", "-e", "setInterval(() => {}, 1000)"]
`,
    'envs/staging.yaml': `# Staging: what QA tests
apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata:
  name: staging
spec:
  apps:
    web:
      version: "1.1.0"   # release candidate
      env: { GREETING: hello }
    worker: {}
`,
    'envs/prod.yaml': `# Production. Change only by promotion.
apiVersion: keelson.dev/v1alpha1
kind: Environment
metadata:
  name: prod  # the real thing
spec:
  apps:
    web:
      port: ${o.prodPort ?? 18081}
      replicas: 2
    worker:
`,
    'releases/web-1.0.0/server.js': '',
    'releases/web-1.1.0/server.js': '',
    'releases/worker/main.js': '',
  });
  gitInit(dir);
  git(dir, 'config', 'user.name', 'Dana Dev');
  git(dir, 'config', 'user.email', 'dana@example.com');
  return commitAll(dir, 'initial ops repository');
}

export const envFile = (dir: string, name: string) => join(dir, 'envs', `${name}.yaml`);
