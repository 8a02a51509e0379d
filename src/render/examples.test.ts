import { stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';
import { formatIssue } from '../core/types.js';
import { renderRepository } from './render.js';

const examples = fileURLToPath(new URL('../../examples', import.meta.url));

test('the examples/ ops repository renders without issues', async () => {
  const { desired, issues } = await renderRepository({ root: examples });
  expect(issues.map(formatIssue)).toEqual([]);
  expect(desired.environments.map((e) => [e.name, e.apps.map((a) => `${a.name}@${a.version}:${a.port}`)])).toEqual([
    ['dev', ['hello@1.0.0:8080']],
    ['prod', ['hello@1.1.0:8081']],
  ]);
  for (const env of desired.environments) {
    for (const app of env.apps) {
      expect((await stat(`${app.artifact.path}/server.js`)).isFile()).toBe(true);
    }
  }
});
