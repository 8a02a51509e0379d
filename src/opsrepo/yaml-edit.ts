/**
 * Surgical edits of ops-repository YAML through the `yaml` Document API: comments, quoting and the layout of
 * untouched documents survive. A changed scalar is spliced into the text in place; a structural change
 * re-stringifies only the document it touches.
 */
import { isMap, isScalar, parseAllDocuments, Scalar, type Document } from 'yaml';

type Path = (string | number)[];

export interface YamlFile {
  text: string;
  docs: Document.Parsed[];
}

export function parseFile(text: string): YamlFile {
  const docs = parseAllDocuments(text, { keepSourceTokens: false });
  const list = Array.isArray(docs) ? docs : [];
  for (const d of list) if (d.errors.length) throw new Error(`YAML syntax error: ${d.errors[0].message.split('\n')[0]}`);
  return { text, docs: list };
}

/** Index of the document of `kind` named `name`, or -1. */
export function findDocument(file: YamlFile, kind: string, name: string): number {
  return file.docs.findIndex((d) => d.get('kind') === kind && d.getIn(['metadata', 'name']) === name);
}

/** A double-quoted string scalar: versions stay strings ("1.10", not 1.1). */
export function quoted(value: string): Scalar {
  const s = new Scalar(value);
  s.type = Scalar.QUOTE_DOUBLE;
  return s;
}

/**
 * Sets string values in one document. Returns the new file text. Existing scalars are replaced in the text itself
 * (nothing else moves); missing keys, or values under null/empty parents, are created through the Document API.
 */
export function setStrings(file: YamlFile, index: number, values: { path: Path; value: string }[]): string {
  const doc = file.docs[index];
  const splices: { start: number; end: number; text: string }[] = [];
  let structural = false;
  for (const { path, value } of values) {
    const node = doc.getIn(path, true);
    if (isScalar(node) && node.range && typeof node.value === 'string' && node.value !== null) {
      if (node.value === value) continue;
      splices.push({ start: node.range[0], end: node.range[1], text: JSON.stringify(value) });
      continue;
    }
    const insert = insertionInBlockMap(file.text, doc, path, value);
    if (insert && !structural) {
      splices.push(insert);
      continue;
    }
    structural = true;
    ensureMaps(doc, path.slice(0, -1));
    doc.setIn(path, quoted(value));
  }
  if (structural) return replaceDocument(file, index, doc);
  let text = file.text;
  for (const s of splices.sort((a, b) => b.start - a.start)) text = text.slice(0, s.start) + s.text + text.slice(s.end);
  return text;
}

/**
 * A new `key: "value"` line appended to an existing block mapping, indented like its other keys: the text around it
 * stays byte for byte (re-stringifying would normalize the spacing of comments and flow collections).
 */
function insertionInBlockMap(text: string, doc: Document, path: Path, value: string): { start: number; end: number; text: string } | undefined {
  const key = path[path.length - 1];
  if (typeof key !== 'string' || !/^[A-Za-z0-9][\w.-]*$/.test(key)) return undefined;
  const parent = doc.getIn(path.slice(0, -1), true);
  if (!isMap(parent) || parent.flow || parent.items.length === 0) return undefined;
  const first = parent.items[0].key as { range?: [number, number, number] } | null;
  const last = parent.items[parent.items.length - 1];
  const lastNode = (last.value ?? last.key) as { range?: [number, number, number] } | null;
  if (!first?.range || !lastNode?.range) return undefined;
  const lineStart = text.lastIndexOf('\n', first.range[0] - 1) + 1;
  const indent = text.slice(lineStart, first.range[0]);
  if (!/^ *$/.test(indent)) return undefined;
  const end = lastNode.range[1];
  let eol = text[end - 1] === '\n' ? end - 1 : text.indexOf('\n', end);
  if (eol < 0) eol = text.length;
  return { start: eol, end: eol, text: `\n${indent}${key}: ${JSON.stringify(value)}` };
}

/** Makes every node along `path` a map (a `null` or empty scalar becomes `{}`), so setIn can descend. */
export function ensureMaps(doc: Document, path: Path): void {
  for (let i = 1; i <= path.length; i++) {
    const node = doc.getIn(path.slice(0, i), true);
    if (isMap(node)) continue;
    if (node === undefined || (isScalar(node) && (node.value === null || node.value === ''))) {
      doc.setIn(path.slice(0, i), doc.createNode({}));
      continue;
    }
    throw new Error(`cannot edit ${path.slice(0, i).join('.')}: it is not a mapping`);
  }
}

/** The file with document `index` re-stringified from its (edited) Document and the rest left byte for byte. */
export function replaceDocument(file: YamlFile, index: number, doc: Document): string {
  const start = index === 0 ? 0 : file.docs[index - 1].range[2];
  const end = file.docs[index].range[2];
  let out = doc.toString({ lineWidth: 0 });
  const before = file.text.slice(0, start);
  if (before !== '' && !before.endsWith('\n')) out = `\n${out}`;
  const after = file.text.slice(end);
  if (after.startsWith('\n') && out.endsWith('\n')) out = out.slice(0, -1);
  if (index > 0 && !out.startsWith('---') && !out.startsWith('\n---')) out = `---\n${out}`;
  return before + out + after;
}

/** The file without document `index` (its text cut out, the others untouched); empty text when it was the only one. */
export function removeDocument(file: YamlFile, index: number): string {
  if (file.docs.length <= 1) return '';
  const start = index === 0 ? 0 : file.docs[index - 1].range[2];
  const end = file.docs[index].range[2];
  const out = file.text.slice(0, start) + file.text.slice(end);
  return out.replace(/^\n+/, '');
}
