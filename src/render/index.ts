export { loadDocuments, parseYaml, type LoadResult, type ParsedDoc } from './load.js';
export { renderDocuments, renderRepository, type RenderOptions, type RenderResult } from './render.js';
export * from './schema.js';
