import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import { formatIssue } from '../core/types.js';
import { templateHash } from '../targets/local/spec-hash.js';
import { renderRepository } from './render.js';

async function render(rollout: string) {
  const root = await mkdtemp(join(tmpdir(), 'keelson-rollout-schema-'));
  onTestFinished(() => rm(root, { recursive: true, force: true }));
  const files: Record<string, string> = {
    'web.yaml': `apiVersion: keelson.dev/v1alpha1
kind: App
metadata: { name: web }
spec:
  version: "1.0.0"
  artifact: { path: rel }
  run: { command: ["node", "server.js"] }
  port: 18080
  rollout:
${rollout.replace(/^/gm, '    ')}
`,
    'env.yaml': 'apiVersion: keelson.dev/v1alpha1\nkind: Environment\nmetadata: { name: dev }\nspec:\n  apps: { web: {} }\n',
    'rel/server.js': '',
  };
  for (const [f, t] of Object.entries(files)) {
    await mkdir(dirname(join(root, f)), { recursive: true });
    await writeFile(join(root, f), t);
  }
  const r = await renderRepository({ root });
  return { app: r.desired.environments[0]?.apps[0], messages: r.issues.map(formatIssue) };
}

describe('spec.rollout strategies', () => {
  test('a canary renders its steps with analysis defaults (Argo semantics)', async () => {
    const { app, messages } = await render(`strategy: canary
canary:
  steps:
    - setWeight: 20
    - pause: { durationSeconds: 30 }
    - pause: {}
    - analysis:
        metrics:
          - name: errors
            requests: { maxErrorRate: 0.01, maxP99Ms: 300 }`);
    expect(messages).toEqual([]);
    expect(app!.rollout).toEqual({
      strategy: 'canary',
      canary: {
        stickySessions: true,
        steps: [
          { setWeight: 20 },
          { pause: { durationSeconds: 30 } },
          { pause: {} },
          {
            analysis: {
              metrics: [
                { name: 'errors', intervalSeconds: 5, count: 1, failureLimit: 0, consecutiveErrorLimit: 4, inconclusiveLimit: 0, timeoutSeconds: 5, requests: { maxErrorRate: 0.01, maxP99Ms: 300, minRequests: 1 } },
              ],
            },
          },
        ],
      },
    });
  });

  test('blue/green defaults to a 30 s scale-down delay and automatic promotion', async () => {
    const { app, messages } = await render('strategy: blueGreen');
    expect(messages).toEqual([]);
    expect(app!.rollout).toEqual({ strategy: 'blueGreen', blueGreen: { autoPromotionEnabled: true, scaleDownDelaySeconds: 30 } });
  });

  test('the rolling default stays off the desired state, and a strategy is not part of the template', async () => {
    const rolling = (await render('progressDeadlineSeconds: 60')).app!;
    expect(rolling.rollout).toBeUndefined();
    const canary = (await render('strategy: canary')).app!;
    const { source: _a, artifact: _d, ...r } = rolling;
    const { source: _b, rollout: _c, artifact: _e, ...c } = canary;
    expect(c).toEqual(r);
    expect(templateHash({ ...canary, artifact: rolling.artifact })).toBe(templateHash(rolling));
  });

  test('mistakes are reported at file:line:col', async () => {
    const { messages } = await render(`strategy: canary
canary:
  steps:
    - setWeight: 120
    - { setWeight: 10, pause: {} }`);
    expect(messages.join('\n')).toMatch(/web\.yaml:13:\d+: .*100/);
    expect(messages.join('\n')).toMatch(/web\.yaml:14:\d+: .*needs exactly one of "setWeight", "pause", "analysis"/);
  });

  test('a strategy block must match the strategy', async () => {
    const { messages } = await render('strategy: canary\nblueGreen: {}');
    expect(messages.join('\n')).toMatch(/web\.yaml:\d+:\d+: .*"blueGreen" applies only to strategy: blueGreen \(strategy is canary\)/);
  });
});
