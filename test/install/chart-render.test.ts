/**
 * Keelson's own chart, rendered by Keelson's own Helm support (the function the Kubernetes target renders chart apps
 * with): an ops repository can deploy Keelson the way it deploys anything else.
 */
import { join } from 'node:path';
import { expect, it } from 'vitest';
import type { DesiredApp } from '../../src/core/model.js';
import { helmUnavailable, renderHelm } from '../../src/targets/kubernetes/helm.js';
import { root } from '../helpers.js';

const why = helmUnavailable();
const run = why && !process.env.CI ? it.skip : it;

run(`deploy/helm/keelson renders with Keelson's Helm support${why ? ` (${why})` : ''}`, async () => {
  if (why) throw new Error(why);
  const app = {
    name: 'keelson',
    env: 'ops',
    helm: { releaseName: 'keelson', values: { repo: { url: 'https://git.example.com/acme/ops.git' } }, valuesFiles: [], tests: 'manual' },
  } as unknown as DesiredApp;
  const objects = await renderHelm(join(root, 'deploy', 'helm', 'keelson'), app, { namespace: 'keelson-system', checkoutDir: root });
  const kinds = objects.map((o) => `${o.kind}/${o.metadata.name}`);
  expect(kinds).toEqual(expect.arrayContaining(['Deployment/keelson', 'Service/keelson', 'ServiceAccount/keelson']));
  const deployment = objects.find((o) => o.kind === 'Deployment') as unknown as { spec: { template: { spec: { containers: { args?: string[]; securityContext?: Record<string, unknown> }[] } } } };
  const container = deployment.spec.template.spec.containers[0];
  expect(container.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
});
