/**
 * Remote Helm charts, pinned by version and cached by content: from an HTTP chart repository (`repo` + `name`) or an
 * OCI registry (`repo: oci://registry/path/chart`), and the dependencies a chart's Chart.lock pins.
 *
 *   const cacheDir = path.join(stateDir, 'charts');
 *   const { dir, digest } = await fetchChart({ repo: 'https://charts.example.com', name: 'web', version: '1.2.0' }, { cacheDir });
 *   const { dir: renderDir } = await resolveDependencies(dir, { cacheDir });   // render renderDir
 *
 * A version once fetched is taken from the cache from then on, across restarts, without asking the network.
 * Network failures are TransientError (the reconciler retries them like an unreachable target); a missing chart or
 * version, a wrong digest and a bad reference are TerminalError; a Chart.yaml/Chart.lock mistake is a
 * ValidationError at its file:line:col. Charts are fetched anonymously: no credentials are taken from the ops repo.
 */
export { ChartNotCachedError, fetchChart, type ChartRef, type FetchChartOptions, type FetchedChart } from './chart-fetch.js';
export { resolveDependencies, type ResolveDependenciesOptions, type ResolvedChart, type ResolvedDependency } from './chart-dependencies.js';
