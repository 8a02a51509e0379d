/**
 * `keelson diff` for Kubernetes: what a server-side apply would change, per object. The dry-run result and the
 * live object are both normalised (managed fields, resource version, status and server-side metadata dropped), so
 * defaults the server adds never show and an unchanged app shows no diff. Fields of `ignoreDifferences` never show.
 */
import type { IgnoreDifference } from '../../core/model.js';
import { comparable, forApply, ignoredPaths, rulesFor, underAny } from './ignore.js';
import { apiMessage, statusCode, type KubeClient } from './client.js';
import { ssa, withManagedFields } from './apply.js';
import { ANNOTATION_APPLIED, formatKey, fullDiffs, matchesDesired, normalize as normalizeObject, type KObject } from './objects.js';

/** Also drops Keelson's applied hash, which changes whenever anything does. */
function normalize(o: KObject): KObject {
  const n = normalizeObject(o);
  if (n.metadata.annotations) {
    const { [ANNOTATION_APPLIED]: _a, ...rest } = n.metadata.annotations;
    n.metadata.annotations = rest;
    if (Object.keys(rest).length === 0) delete n.metadata.annotations;
  }
  return n;
}
import { INVALID_FIELD, type ObjectDiff } from '../target.js';
import { isSecret, redactChanges, withoutData } from './secrets.js';

/**
 * What the diff shows of one object. New and changed objects are dry-run with strict field validation: a field the
 * API server does not know (a misspelt `replica:`) is named here, before the merge, where a sync would silently drop
 * it (syncs apply with `fieldValidation=Ignore`, as the server's default drops it too, with only a warning).
 */
export async function diffObject(api: KubeClient, desired: KObject, live: KObject | undefined, ignore?: readonly IgnoreDifference[]): Promise<ObjectDiff> {
  const key = formatKey(desired);
  live = await withManagedFields(api, desired, live, ignore);
  if (!live) {
    const created: ObjectDiff = { key, action: 'create', changes: [{ path: '', desired: normalize(isSecret(desired) ? withoutData(desired) : desired) }] };
    // Only a validation error is shown: a dry-run of a create can fail for reasons the sync itself takes care of
    // (its namespace does not exist yet, a CRD of the same sync is not installed yet). The server checks the fields
    // first, so a missing namespace does not hide them.
    const invalid = await ssa(api, desired, false, true, undefined, true).then(
      () => undefined,
      (err) => (isFieldValidationError(err) ? apiMessage(err) : undefined),
    );
    if (invalid) created.changes.push({ path: INVALID_FIELD, desired: invalid });
    return created;
  }
  if (matchesDesired(comparable(desired, live, ignore), live)) return { key, action: 'none', changes: [] };
  let dry: KObject;
  try {
    dry = await ssa(api, forApply(desired, live, ignore), false, true, undefined, true);
  } catch (err) {
    return { key, action: 'update', changes: [{ path: isFieldValidationError(err) ? INVALID_FIELD : '(dry-run failed)', desired: apiMessage(err) }] };
  }
  const ignored = ignoredPaths(desired, live, rulesFor(desired, ignore));
  const all = fullDiffs(normalize(live), normalize(dry)).filter((c) => !underAny(c.path, ignored));
  const changes = redactChanges(desired, all.map((c) => ({ path: c.path, live: c.live, desired: c.desired })));
  return { key, action: changes.length ? 'update' : 'none', changes };
}

/** Text as `keelson diff` prints it: one line per object, one per changed field. */
export function formatObjectDiffs(diffs: ObjectDiff[]): string {
  const lines: string[] = [];
  const show = (v: unknown) => (v === undefined ? '(none)' : JSON.stringify(v));
  for (const d of diffs) {
    if (d.action === 'none') continue;
    lines.push(`    ${d.action.padEnd(6)} ${d.key}`);
    for (const c of d.changes) {
      if (c.path === INVALID_FIELD) lines.push(`        invalid: ${String(c.desired)}`);
      else if (d.action === 'update') lines.push(`        ${c.path}: ${show(c.live)} → ${show(c.desired)}`);
    }
  }
  return lines.join('\n');
}

/**
 * The API server refused a field under strict validation (unknown or duplicate). A server-side apply answers 500
 * ("failed to create typed patch object …: .spec.replica: field not declared in schema"), other writes 400 or 422.
 */
function isFieldValidationError(err: unknown): boolean {
  const code = statusCode(err);
  return (code === 400 || code === 422 || code === 500) && /strict decoding error|unknown field|field not declared in schema|duplicate field/i.test(apiMessage(err));
}
