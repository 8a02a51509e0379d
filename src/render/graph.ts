/** Dependency graph of apps: cycles and a stable dependencies-first order. Linear in apps + edges. */

/** `deps` maps each app to the apps it depends on (only names that are keys of `deps` count). */
export type DepGraph = ReadonlyMap<string, readonly string[]>;

/**
 * Every dependency cycle, one per strongly connected component, as a closed path that starts and
 * ends at the component's alphabetically first app: `['a', 'b', 'a']`; a self-dependency is `['a', 'a']`.
 */
export function findCycles(graph: DepGraph): string[][] {
  // Tarjan's algorithm, iterative so long dependency chains cannot overflow the stack.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const cycles: string[][] = [];

  for (const root of [...graph.keys()].sort()) {
    if (index.has(root)) continue;
    const frames: { v: string; next: number }[] = [];
    const open = (v: string) => {
      index.set(v, index.size);
      low.set(v, index.get(v)!);
      stack.push(v);
      onStack.add(v);
      frames.push({ v, next: 0 });
    };
    open(root);
    while (frames.length > 0) {
      const frame = frames[frames.length - 1];
      const { v } = frame;
      const deps = graph.get(v) ?? [];
      if (frame.next < deps.length) {
        const w = deps[frame.next++];
        if (!graph.has(w)) continue;
        if (!index.has(w)) open(w);
        else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
        continue;
      }
      frames.pop();
      const parent = frames[frames.length - 1];
      if (parent) low.set(parent.v, Math.min(low.get(parent.v)!, low.get(v)!));
      if (low.get(v) !== index.get(v)) continue;
      const scc = new Set<string>();
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.add(w);
      } while (w !== v);
      if (scc.size > 1 || deps.includes(v)) cycles.push(closedPath(graph, scc));
    }
  }
  return cycles.sort((a, b) => (a[0] < b[0] ? -1 : 1));
}

/** Shortest path from the first member back to itself, inside the component. */
function closedPath(graph: DepGraph, scc: Set<string>): string[] {
  const start = [...scc].sort()[0];
  const parent = new Map<string, string>();
  const queue = [start];
  for (let i = 0; i < queue.length; i++) {
    const v = queue[i];
    for (const w of [...(graph.get(v) ?? [])].sort()) {
      if (!scc.has(w)) continue;
      if (w === start) {
        const path = [v];
        for (let p = v; p !== start; ) path.push((p = parent.get(p)!));
        return [...path.reverse(), start];
      }
      if (!parent.has(w)) {
        parent.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start, start];
}

/**
 * `names` ordered dependencies first: by depth (an app with no dependencies among `names` has depth 0),
 * then by name, so the order is stable and each depth is a wave that could start together.
 * Dependencies outside `names` and back edges of cycles are ignored.
 */
export function dependencyOrder(names: readonly string[], graph: DepGraph): string[] {
  const member = new Set(names);
  const depth = new Map<string, number>();
  const visiting = new Set<string>();
  // Iterative post-order DFS: an app's depth is known once all its dependencies' are.
  for (const root of member) {
    if (depth.has(root)) continue;
    const frames = [{ v: root, next: 0 }];
    visiting.add(root);
    while (frames.length > 0) {
      const frame = frames[frames.length - 1];
      const deps = graph.get(frame.v) ?? [];
      if (frame.next < deps.length) {
        const w = deps[frame.next++];
        if (member.has(w) && !depth.has(w) && !visiting.has(w)) {
          visiting.add(w);
          frames.push({ v: w, next: 0 });
        }
        continue;
      }
      frames.pop();
      visiting.delete(frame.v);
      let d = 0;
      // Back edges of a cycle (deps still being visited) have no depth yet and are skipped.
      for (const w of deps) if (depth.has(w)) d = Math.max(d, depth.get(w)! + 1);
      depth.set(frame.v, d);
    }
  }
  return [...member]
    .map((name) => ({ name, depth: depth.get(name)! }))
    .sort((a, b) => a.depth - b.depth || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((x) => x.name);
}
