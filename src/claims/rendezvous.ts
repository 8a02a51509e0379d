/**
 * Which engine an environment is assigned to: rendezvous (highest-random-weight) hashing of environment × member,
 * with bounded loads so that the environments are spread evenly (every member gets ⌊E/N⌋ or ⌈E/N⌉).
 *
 * Each environment ranks the members by weight (sha256 of `env \0 member`). Assignment goes rank by rank: first every
 * environment whose first choice still has room goes there (in name order), then the rest to their second choice, and
 * so on. Every engine computes the same answer from the same environments and members. When a member leaves, the
 * others keep what they had (their first choices are unchanged and they had room for them before) and take over the
 * leaver's; when one joins, it takes the environments that rank it first, up to its share.
 */
import { createHash } from 'node:crypto';

function weight(env: string, member: string): bigint {
  return createHash('sha256').update(`${env}\0${member}`).digest().readBigUInt64BE(0);
}

/** The members in `env`'s order of preference (highest weight first; ties to the lower id). */
export function preference(env: string, members: readonly string[]): string[] {
  return members
    .map((m) => ({ m, w: weight(env, m) }))
    .sort((a, b) => (a.w === b.w ? (a.m < b.m ? -1 : 1) : a.w > b.w ? -1 : 1))
    .map((x) => x.m);
}

/** Each environment's member, for environments `envs` over `members` (empty without members). */
export function assign(envs: readonly string[], members: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  const ms = [...new Set(members)].sort();
  const es = [...new Set(envs)].sort();
  if (ms.length === 0) return out;
  const base = Math.floor(es.length / ms.length);
  let extra = es.length % ms.length;
  const load = new Map(ms.map((m) => [m, 0]));
  const prefs = new Map(es.map((e) => [e, preference(e, ms)]));
  for (let rank = 0; rank < ms.length; rank++) {
    for (const env of es) {
      if (out.has(env)) continue;
      const m = prefs.get(env)![rank]!;
      const n = load.get(m)!;
      if (n < base || (n === base && extra > 0)) {
        if (n === base) extra--;
        load.set(m, n + 1);
        out.set(env, m);
      }
    }
  }
  return out;
}
