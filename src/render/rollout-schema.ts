/**
 * Zod schema of an App's `spec.rollout` strategy fields (blue/green and canary), merged into AppSpecSchema's
 * `rollout` object, and its conversion to the desired model (src/core/rollout.ts).
 */
import { z } from 'zod';
import { exactlyOne } from './schema-rules.js';
import type { AnalysisSpec, CanaryStep, RolloutSpec } from '../core/rollout.js';

const Int = (min: number, max: number, dflt: number) => z.int().min(min).max(max).default(dflt);


const MetricSchema = z
  .strictObject({
    name: z.string().min(1).describe('Shown in events and failure messages'),
    intervalSeconds: Int(1, 3600, 5).describe('Seconds between measurements (request metrics are counted over each interval)'),
    count: Int(1, 1000, 1).describe('Number of measurements'),
    failureLimit: Int(0, 1000, 0).describe('Failed measurements tolerated; one more fails the analysis'),
    consecutiveErrorLimit: Int(0, 1000, 4).describe('Errors in a row (no measurement could be taken) tolerated; one more fails the analysis'),
    inconclusiveLimit: Int(0, 1000, 0).describe('Inconclusive measurements tolerated; one more pauses the rollout'),
    timeoutSeconds: Int(1, 3600, 5).describe('Time allowed to one http or exec measurement'),
    requests: z
      .strictObject({
        maxErrorRate: z.number().min(0).max(1).optional().describe('Highest share of 5xx answers of the new version, 0..1'),
        maxP99Ms: z.number().positive().optional().describe('Highest 99th percentile latency of the new version, in ms'),
        minRequests: Int(0, 1_000_000, 1).describe('Fewer requests in an interval make the measurement inconclusive'),
      })
      .optional()
      .describe("Thresholds on the proxy's own request metrics of the new version"),
    http: z
      .strictObject({
        path: z.string().regex(/^\//, { error: 'must start with "/"' }).optional(),
        url: z.url({ protocol: /^https?$/ }).optional(),
        method: z.string().regex(/^[A-Z]+$/).default('GET'),
        expectStatus: z.array(z.int().min(100).max(599)).min(1).default([200]),
      })
      .check(exactlyOne(['path', 'url']))
      .optional()
      .describe('A request to a replica of the new version ("path") or to a "url"'),
    exec: z
      .strictObject({ command: z.array(z.string().min(1)).min(1) })
      .optional()
      .describe('A command run in the new release directory: exit 0 passes, exit 1 fails, anything else is an error'),
  })
  .check(exactlyOne(['requests', 'http', 'exec']));

const AnalysisSchema = z.strictObject({ metrics: z.array(MetricSchema).min(1) });

const StepSchema = z
  .strictObject({
    setWeight: z.int().min(0).max(100).optional().describe('Share of new requests (percent) sent to the new version'),
    pause: z
      .strictObject({ durationSeconds: z.int().min(0).max(86_400).optional() })
      .optional()
      .describe('Wait this long, or without durationSeconds until `keelson promote-rollout`'),
    analysis: AnalysisSchema.optional().describe('Measure the new version; failure aborts to the stable version, inconclusive pauses'),
  })
  .check(exactlyOne(['setWeight', 'pause', 'analysis']));

/** The strategy fields of `spec.rollout` (besides progressDeadlineSeconds). */
export const rolloutStrategyFields = {
  strategy: z.enum(['rolling', 'blueGreen', 'canary']).default('rolling').describe('How a new version replaces the running one'),
  blueGreen: z
    .strictObject({
      prePromotionAnalysis: AnalysisSchema.optional(),
      postPromotionAnalysis: AnalysisSchema.optional(),
      autoPromotionEnabled: z.boolean().default(true).describe('Switch once ready; false waits for `keelson promote-rollout`'),
      scaleDownDelaySeconds: Int(0, 86_400, 30).describe('Seconds the old set keeps running after the switch'),
    })
    .optional(),
  canary: z
    .strictObject({
      steps: z.array(StepSchema).default([]),
      stickySessions: z.boolean().default(true).describe('Keep each client on the version that first answered it (cookie)'),
    })
    .optional(),
};

/** Rejects a strategy block that does not match `strategy`. */
export function checkRolloutStrategy(ctx: { value: { strategy: string; blueGreen?: unknown; canary?: unknown }; issues: z.core.$ZodRawIssue[] }): void {
  for (const k of ['blueGreen', 'canary'] as const) {
    if (ctx.value[k] !== undefined && ctx.value.strategy !== k) {
      ctx.issues.push({ code: 'custom', input: ctx.value, path: [k], message: `"${k}" applies only to strategy: ${k} (strategy is ${ctx.value.strategy})` });
    }
  }
}

type Parsed = z.output<z.ZodObject<typeof rolloutStrategyFields>>;
type ParsedAnalysis = z.output<typeof AnalysisSchema>;

function toAnalysis(a: ParsedAnalysis): AnalysisSpec {
  return {
    metrics: a.metrics.map((m) => {
      const out: AnalysisSpec['metrics'][number] = {
        name: m.name,
        intervalSeconds: m.intervalSeconds,
        count: m.count,
        failureLimit: m.failureLimit,
        consecutiveErrorLimit: m.consecutiveErrorLimit,
        inconclusiveLimit: m.inconclusiveLimit,
        timeoutSeconds: m.timeoutSeconds,
      };
      if (m.requests) out.requests = stripUndefined({ ...m.requests });
      if (m.http) out.http = stripUndefined({ ...m.http });
      if (m.exec) out.exec = { command: [...m.exec.command] };
      return out;
    }),
  };
}

/** The desired model of a parsed rollout; undefined for the default rolling update (kept off the desired state). */
export function toRolloutSpec(r: Parsed): RolloutSpec | undefined {
  if (r.strategy === 'blueGreen') {
    const bg = r.blueGreen ?? { autoPromotionEnabled: true, scaleDownDelaySeconds: 30 };
    return {
      strategy: 'blueGreen',
      blueGreen: stripUndefined({
        autoPromotionEnabled: bg.autoPromotionEnabled,
        scaleDownDelaySeconds: bg.scaleDownDelaySeconds,
        prePromotionAnalysis: bg.prePromotionAnalysis && toAnalysis(bg.prePromotionAnalysis),
        postPromotionAnalysis: bg.postPromotionAnalysis && toAnalysis(bg.postPromotionAnalysis),
      }),
    };
  }
  if (r.strategy === 'canary') {
    const c = r.canary ?? { steps: [], stickySessions: true };
    const steps: CanaryStep[] = c.steps.map((s) => {
      if (s.setWeight !== undefined) return { setWeight: s.setWeight };
      if (s.pause !== undefined) return { pause: s.pause.durationSeconds === undefined ? {} : { durationSeconds: s.pause.durationSeconds } };
      return { analysis: toAnalysis(s.analysis!) };
    });
    return { strategy: 'canary', canary: { steps, stickySessions: c.stickySessions } };
  }
  return undefined;
}

function stripUndefined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}
