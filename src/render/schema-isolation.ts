/**
 * `user:` and `resources:` of an App (and of an environment's entry for it): who the app's processes run as and
 * the limits of each replica, in Kubernetes' quantity vocabulary (`256Mi`, `500m`). Quantities are parsed here, so a
 * bad one is an issue at its `file:line:col` and the desired model holds canonical numbers (bytes, millicores).
 */
import { z } from 'zod';
import type { AppResources, AppUser } from '../core/model.js';

/** A POSIX-portable user or group name (what useradd accepts). */
const SYSTEM_NAME = /^[a-z_][a-z0-9_-]{0,31}\$?$/;

const SystemName = z
  .string()
  .regex(SYSTEM_NAME, { error: 'must be a system user or group name (lowercase letters, digits, "_" and "-", at most 32 characters)' });

export const UserSchema = z
  .union([
    SystemName,
    z.strictObject({
      name: SystemName.describe('The system user'),
      group: SystemName.optional().describe("The system group (default: the user's primary group)"),
    }),
  ])
  .transform((u): AppUser => (typeof u === 'string' ? { name: u } : u.group === undefined ? { name: u.name } : { name: u.name, group: u.group }))
  .describe('Local target: the system user the app runs as, e.g. "web" or {name: web, group: www-data}; it must exist on the machine');

const binary: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
const decimal: Record<string, number> = { m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };
const QUANTITY = /^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)|[eE]([+-]?[0-9]+))?$/;

/** A Kubernetes quantity (`256Mi`, `1.5G`, `500m`, `1e3`, or a plain number) as a number; undefined when malformed. */
export function parseQuantity(input: string | number): number | undefined {
  if (typeof input === 'number') return Number.isFinite(input) && input >= 0 ? input : undefined;
  const m = QUANTITY.exec(input.trim());
  if (!m) return undefined;
  const [, num, suffix = '', exp] = m;
  const n = Number(num);
  if (exp !== undefined) return n * 10 ** Number(exp);
  return n * (binary[suffix] ?? decimal[suffix]);
}

const QuantityInput = z.union([z.string(), z.number()], { error: 'must be a quantity such as "256Mi" or "500m"' });

function quantity(what: string, toUnit: (n: number) => number, min: number, max: number, hint: string) {
  return QuantityInput.transform((v, ctx) => {
    const n = parseQuantity(v);
    if (n === undefined) {
      ctx.issues.push({ code: 'custom', input: v, message: `${JSON.stringify(v)} is not a quantity; ${hint}` });
      return z.NEVER;
    }
    const unit = Math.round(toUnit(n));
    if (unit < min || unit > max) {
      ctx.issues.push({ code: 'custom', input: v, message: `${what} ${JSON.stringify(v)} is out of range; ${hint}` });
      return z.NEVER;
    }
    return unit;
  });
}

const Count = (min: number, max: number) => z.int().min(min).max(max);

export const ResourcesSchema = z
  .strictObject({
    memory: quantity('memory', (n) => n, 2 ** 20, 2 ** 50, 'write bytes with a suffix, e.g. "256Mi" or "1Gi" (at least 1Mi)')
      .optional()
      .describe('Memory limit of each replica, e.g. "256Mi"; over it the replica is OOM-killed (reason OOMKilled) and restarted'),
    cpu: quantity('cpu', (n) => n * 1000, 10, 1_000_000, 'write CPUs or millicores, e.g. "500m" or "2" (at least 10m)')
      .optional()
      .describe('CPU limit of each replica, e.g. "500m" (half a CPU) or "2"'),
    pids: Count(1, 4_194_304).optional().describe('Most processes and threads of each replica'),
    openFiles: Count(16, 1_048_576).optional().describe('Most open file descriptors of each process (RLIMIT_NOFILE)'),
  })
  .transform((r): AppResources => {
    const out: AppResources = {};
    for (const k of ['memory', 'cpu', 'pids', 'openFiles'] as const) if (r[k] !== undefined) out[k] = r[k];
    return out;
  })
  .describe('Local target: limits of each replica, in Kubernetes quantities: {memory: 256Mi, cpu: 500m, pids: 200, openFiles: 4096}');

/** An environment's resources override the App's limit by limit. */
export function mergeResources(base: AppResources | undefined, override: AppResources | undefined): AppResources | undefined {
  const merged = { ...base, ...override };
  return Object.keys(merged).length ? merged : undefined;
}

/** `268435456` → `256Mi`, `500` → `500m`: limits as status shows them. */
export function formatBytes(n: number): string {
  for (const [suffix, f] of Object.entries(binary).reverse()) if (n >= f && n % f === 0) return `${n / f}${suffix}`;
  return String(n);
}

export function formatMillicores(n: number): string {
  return n % 1000 === 0 ? String(n / 1000) : `${n}m`;
}
