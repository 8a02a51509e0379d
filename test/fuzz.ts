/**
 * Shared settings of the property-based fuzz tests (`*.fuzz.test.ts`). Each property runs a bounded number of
 * times so the suite stays well under a minute in CI; fast-check prints the seed and the shrunk counterexample on
 * failure. A longer hunt: `KEELSON_FUZZ_RUNS=5000 npx vitest run fuzz`; replay one failure with
 * `KEELSON_FUZZ_SEED=<seed>` (and the path fast-check printed, in `KEELSON_FUZZ_PATH`).
 */
import type { Parameters } from 'fast-check';

export function fuzzRuns(dflt = 200): number {
  const n = Number(process.env.KEELSON_FUZZ_RUNS);
  return Number.isInteger(n) && n > 0 ? Math.max(n, 1) : dflt;
}

/** `dflt` runs, or KEELSON_FUZZ_RUNS when set; the seed and path to replay from the environment. */
export function fuzzParams<T>(dflt = 200): Parameters<T> {
  const numRuns = fuzzRuns(dflt);
  const seed = process.env.KEELSON_FUZZ_SEED === undefined ? undefined : Number(process.env.KEELSON_FUZZ_SEED);
  const path = process.env.KEELSON_FUZZ_PATH;
  return { numRuns, verbose: 1, ...(seed === undefined ? {} : { seed }), ...(path === undefined ? {} : { path }) };
}
