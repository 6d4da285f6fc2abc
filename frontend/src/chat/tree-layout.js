// Where each message of a conversation goes in the drawn tree. Rows are depths (a question, its
// reply, the next question...); columns are lanes. The path shown is the trunk, straight down
// the first lane, so it reads as the conversation itself; every other branch runs straight
// down a lane of its own to the right of the message it forks from, in the leftmost lane that
// is free over its rows (with a row of space above and below, so that two branches in one lane
// never look like one). A conversation is mostly long chains with a few forks: this keeps the
// drawing as narrow as its busiest rows, where a classic tidy tree would lean every chain
// sideways at each fork.

/**
 * @typedef {{
 *   id: string, parent: string | null, depth: number, lane: number,
 *   main: string | null, kids: string[], pos: number, of: number,
 * }} Place
 * `main`: the child drawn straight below (on the path, else the one last shown);
 * `pos`/`of`: the place among its siblings (version 2 of 3).
 * @typedef {{places: Map<string, Place>, order: string[], rows: string[][], lanes: number, roots: number}} Layout
 * `order`: depth first, siblings in their order (a screen reader's reading order);
 * `rows`: the ids of each depth, left to right.
 */

/**
 * @param {(parent: string | null) => string[]} children the children of a message (of the roots for null)
 * @param {string[]} path the ids of the path shown, from its root to its leaf
 * @param {(id: string) => string | undefined} chosen the child last shown under a message
 * @returns {Layout}
 */
export function layout(children, path, chosen) {
  const onPath = new Set(path);
  /** @type {Map<string, Place>} */
  const places = new Map();
  /** @type {[number, number][][]} the rows each lane holds, as [first, last] */
  const busy = [];
  /** @param {number} lane @param {number} from @param {number} to */
  const free = (lane, from, to) => !(busy[lane] || []).some(([a, b]) => a <= to + 1 && b >= from - 1);
  /** @param {string[]} kids @param {string | null} parent */
  const pickMain = (kids, parent) => {
    const shown = kids.find((k) => onPath.has(k));
    if (shown) return shown;
    const last = parent === null ? undefined : chosen(parent);
    return last && kids.includes(last) ? last : kids[kids.length - 1];
  };

  /** A chain from `first` down its main children, in the leftmost free lane from `minLane`.
   * @param {string} first @param {string | null} parent @param {number} depth @param {number} minLane */
  const chain = (first, parent, depth, minLane) => {
    /** @type {string[]} */
    const ids = [];
    for (let id = /** @type {string | null} */ (first); id && !places.has(id); ) {
      ids.push(id);
      const kids = children(id);
      const main = kids.length ? pickMain(kids, id) : null;
      const siblings = children(ids.length > 1 ? ids[ids.length - 2] : parent);
      places.set(id, {
        id, parent: ids.length > 1 ? ids[ids.length - 2] : parent, depth: depth + ids.length - 1,
        lane: 0, main, kids, pos: siblings.indexOf(id) + 1, of: siblings.length,
      });
      id = main;
    }
    const last = depth + ids.length - 1;
    let lane = minLane;
    while (!free(lane, depth, last)) lane++;
    (busy[lane] ||= []).push([depth, last]);
    for (const id of ids) /** @type {Place} */ (places.get(id)).lane = lane;
    for (const id of ids) {
      const p = /** @type {Place} */ (places.get(id));
      for (const k of p.kids) if (k !== p.main) chain(k, id, p.depth + 1, lane + 1);
    }
  };

  const roots = children(null);
  if (roots.length) {
    const trunk = pickMain(roots, null);
    chain(trunk, null, 0, 0);
    for (const r of roots) if (r !== trunk) chain(r, null, 0, 1);
  }

  // depth first without recursion (a chain is as deep as the conversation is long)
  /** @type {string[]} */
  const order = [];
  const stack = [...roots].reverse();
  while (stack.length) {
    const id = /** @type {string} */ (stack.pop());
    const p = places.get(id);
    if (!p) continue;
    order.push(id);
    for (let i = p.kids.length - 1; i >= 0; i--) stack.push(p.kids[i]);
  }

  /** @type {string[][]} */
  const rows = [];
  for (const id of order) {
    const p = /** @type {Place} */ (places.get(id));
    (rows[p.depth] ||= []).push(id);
  }
  const laneOf = (/** @type {string} */ id) => /** @type {Place} */ (places.get(id)).lane;
  for (const row of rows) row.sort((a, b) => laneOf(a) - laneOf(b));
  return { places, order, rows, lanes: busy.length, roots: roots.length };
}
