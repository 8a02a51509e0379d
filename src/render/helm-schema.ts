/**
 * `spec.helm` of an App (and of an environment's entry for it): how a Helm chart is rendered on the Kubernetes
 * target. The chart is the `manifests` directory (it holds a Chart.yaml) or, reserved for remote charts, `chart`.
 */
import { z } from 'zod';

const Sha256Digest = z.string().regex(/^sha256:[0-9a-f]{64}$/, { error: 'must be "sha256:" and 64 lowercase hex digits' });

export const HelmChartSchema = z
  .strictObject({
    repo: z
      .string()
      .regex(/^(https?|oci):\/\/[^\s]+$/, { error: 'must be an http(s):// chart repository URL or an oci:// reference' })
      .describe('http(s):// URL of a chart repository (its index.yaml), or oci://registry/path of the chart'),
    name: z.string().min(1).optional().describe('Chart name in an http(s) repository (required there; an oci:// reference names the chart itself)'),
    version: z.string().min(1).describe('Exact chart version, e.g. "1.4.2"'),
    digest: Sha256Digest.optional().describe('sha256 digest the downloaded chart must have, e.g. "sha256:…"'),
  })
  .check((ctx) => {
    const { repo, name } = ctx.value;
    if (/^https?:\/\//.test(repo) && name === undefined) {
      ctx.issues.push({ code: 'custom', input: ctx.value, message: 'a chart from an http(s) repository needs "name" (the chart name in its index.yaml)' });
    }
  });

const helmFields = {
  releaseName: z
    .string()
    .max(53, { error: 'must be at most 53 characters (a Helm release name)' })
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, { error: 'must be lowercase letters, digits and "-", starting and ending with a letter or digit' })
    .optional()
    .describe('Helm release name (.Release.Name); default: the app name'),
  values: z.record(z.string(), z.unknown()).optional().describe('Inline values, applied after all values files; an environment entry\'s values are merged over the App\'s'),
  valuesFiles: z
    .array(z.string().min(1))
    .optional()
    .describe('Values files relative to the chart directory, inside the repository, applied in order (the App\'s, then the environment entry\'s)'),
  tests: z
    .enum(['manual', 'afterSync'])
    .optional()
    .describe('"manual" (default): Helm test hooks run only with `keelson test`; "afterSync": also after each sync, a failure fails the sync'),
};

export const HelmSpecSchema = z
  .strictObject({
    ...helmFields,
    chart: HelmChartSchema.optional().describe('A remote chart instead of the manifests directory'),
  })
  .describe('Kubernetes target: Helm rendering of the chart in "manifests" (a directory with a Chart.yaml) or of a remote "chart"');

/** An environment entry may set every field; its values are merged over the App's, its values files come after. */
export const HelmOverridesSchema = z
  .strictObject({
    ...helmFields,
    chart: HelmChartSchema.optional().describe("A remote chart for this environment (replaces the App's)"),
  })
  .describe("Helm settings of this app here: values merged over the App's, values files after the App's, other fields replace");

export type HelmSpecInput = z.output<typeof HelmSpecSchema>;
