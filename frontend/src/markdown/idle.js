// Work that can wait: done in small slices when the page is idle, so that rendering old
// replies' Markdown, highlighting their code and typesetting their math never makes one long
// task that would hold up a click, a key or the reply streaming in.

/** @type {Array<() => void>} */
const jobs = [];
let scheduled = false;
const SLICE_MS = 8;

const idle =
  typeof requestIdleCallback === 'function'
    ? (/** @type {() => void} */ fn) => requestIdleCallback(fn, { timeout: 250 })
    : (/** @type {() => void} */ fn) => setTimeout(fn, 1);

function run() {
  scheduled = false;
  const until = performance.now() + SLICE_MS;
  while (jobs.length && performance.now() < until) {
    const job = /** @type {() => void} */ (jobs.shift());
    try {
      job();
    } catch (e) {
      console.error(e);
    }
  }
  if (jobs.length) schedule();
}

function schedule() {
  if (scheduled) return;
  scheduled = true;
  idle(run);
}

/** Run `job` when the page is idle, after the jobs already waiting. @param {() => void} job */
export function later(job) {
  jobs.push(job);
  schedule();
}

/** Run `job` before the jobs waiting (what is on screen goes first). @param {() => void} job */
export function soon(job) {
  jobs.unshift(job);
  schedule();
}
