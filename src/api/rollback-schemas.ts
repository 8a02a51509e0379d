/** Shapes of the rollback routes (src/api/rollback-routes.ts), for the route table and the OpenAPI document. */
import { z } from 'zod';

export const rollbackRequestSchema = z
  .object({
    to: z.string().min(1).max(200).optional().describe('Revision to restore (sha, tag); default: the newest healthy revision whose declaration differs'),
    reason: z.string().max(500).optional().describe('Why; written into the commit message'),
  })
  .meta({ id: 'RollbackRequest' });

export const rollbackResponseSchema = z
  .object({
    result: z.literal('Committed'),
    message: z.string(),
    commit: z.string(),
    branch: z.string(),
    to: z.string(),
    versionFrom: z.string().nullable(),
    versionTo: z.string().nullable(),
  })
  .meta({ id: 'RollbackResult' });

export const rollbackInfoSchema = z
  .object({
    writable: z.boolean(),
    reason: z.string().nullable().describe('Why the engine cannot commit to the ops repository'),
    target: z.object({ revision: z.string(), version: z.string().nullable(), at: z.string() }).nullable(),
  })
  .meta({ id: 'RollbackInfo' });
