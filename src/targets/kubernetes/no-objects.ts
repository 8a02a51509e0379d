/** The error of an app whose manifests directory renders no objects: where it is declared, what the directory holds. */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { DesiredApp } from '../../core/model.js';

/** Why a manifests directory gave nothing: what it holds and what each kind of file needs. */
export async function noObjectsMessage(app: DesiredApp, dir: string, label: string): Promise<string> {
  const at = app.source.file ? `${app.source.file}:${app.source.line}:${app.source.col}: ` : '';
  const found = await listFiles(dir).catch(() => [] as string[]);
  const yaml = found.filter((f) => /\.(ya?ml|json)$/.test(f));
  const other = found.filter((f) => !yaml.includes(f));
  let what: string;
  if (found.length === 0) what = 'the directory is empty';
  else if (yaml.length === 0) {
    const kinds = [...new Set(other.map((f) => (/\.[^./]+$/.exec(f)?.[0] ?? f)))].slice(0, 5).join(', ');
    what = `no .yaml/.yml/.json files (found ${kinds})`;
    if (other.some((f) => f.endsWith('.libsonnet'))) what += '; only top-level .jsonnet files are rendered, .libsonnet files are libraries they import';
  } else what = `${yaml.length} .yaml/.yml/.json file${yaml.length === 1 ? '' : 's'} holding no objects (empty, or only comments)`;
  return `${at}App ${app.name}: manifests directory ${label} rendered no objects (${what}); an app with nothing to deploy is an error: add manifests, or remove the app from the environment`;
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.name.startsWith('.')) continue;
    if (e.isDirectory()) out.push(...(await listFiles(join(dir, e.name))).map((f) => join(e.name, f)));
    else out.push(e.name);
  }
  return out;
}
