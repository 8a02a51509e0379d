#!/usr/bin/env node
// Regenerate schema/keelson.schema.json from the zod schemas: `npm run build && node scripts/gen-schema.mjs`.
// `--check` exits 1 instead of writing when the committed file is stale.
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const { keelsonJsonSchemaText } = await import('../dist/render/schema.js');
const out = fileURLToPath(new URL('../schema/keelson.schema.json', import.meta.url));
const fresh = keelsonJsonSchemaText();

if (process.argv.includes('--check')) {
  const current = await readFile(out, 'utf8').catch(() => '');
  if (current !== fresh) {
    console.error(`${out} is stale; run: npm run build && node scripts/gen-schema.mjs`);
    process.exit(1);
  }
} else {
  await writeFile(out, fresh);
  console.log(`wrote ${out}`);
}
