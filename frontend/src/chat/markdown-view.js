// A finished reply's Markdown. The replies at the end of the conversation (the ones on screen
// when it opens) are rendered at once; the others when they come near the screen, a slice at a
// time when the page is idle, so a long conversation opens fast and scrolls without long tasks.
// Until then the text shows as it is. Highlighting and math of replies rendered that way wait
// for idle time too.
import { html } from 'htm/preact';
import { useLayoutEffect, useRef } from 'preact/hooks';
import { renderHtml } from '../markdown/md.js';
import { enhance } from '../markdown/enhance.js';
import { soon } from '../markdown/idle.js';
import { StreamView } from '../markdown/stream.js';

/** @type {Map<string, string>} rendered HTML by source, for conversations opened again */
const cache = new Map();
/** @type {WeakMap<Element, string>} */
const sources = new WeakMap();

/** @param {string} src */
function rendered(src) {
  let out = cache.get(src);
  if (out === undefined) {
    out = renderHtml(src);
    if (cache.size > 2000) cache.clear();
    cache.set(src, out);
  }
  return out;
}

/** @param {HTMLElement} el @param {string} src @param {boolean} defer */
function paint(el, src, defer) {
  el.innerHTML = rendered(src);
  el.classList.remove('md-pending');
  enhance(el, { defer });
}

/** @param {HTMLElement} el @param {boolean} defer */
function paintPending(el, defer) {
  const src = sources.get(el);
  if (src !== undefined && el.isConnected && el.classList.contains('md-pending')) {
    paint(el, src, defer);
  }
}

/**
 * Render the Markdown of the replies inside `list` that are on its screen now (a conversation
 * being opened is shown rendered, not as text waiting for its turn); whether there were any.
 * @param {HTMLElement} list
 */
export function paintOnScreen(list) {
  const box = list.getBoundingClientRect();
  let painted = false;
  for (const node of list.querySelectorAll('.md-pending')) {
    const el = /** @type {HTMLElement} */ (node);
    const r = el.getBoundingClientRect();
    if (r.bottom > box.top && r.top < box.bottom) {
      paintPending(el, false);
      painted = true;
    }
  }
  return painted;
}

/** @type {IntersectionObserver | null} */
let observer = null;
function watcher() {
  observer ||= new IntersectionObserver(
    (entries) => {
      for (const e of entries) {
        if (!e.isIntersecting) continue;
        const el = /** @type {HTMLElement} */ (e.target);
        observer?.unobserve(el);
        const box = e.boundingClientRect;
        if (box.bottom > 0 && box.top < innerHeight) paintPending(el, false); // on screen now
        else soon(() => paintPending(el, true));
      }
    },
    { rootMargin: '1500px 0px' },
  );
  return observer;
}

/** @param {{source: string, eager?: boolean}} props */
export function Markdown({ source, eager }) {
  const ref = useRef(/** @type {HTMLDivElement | null} */ (null));
  useLayoutEffect(() => {
    const el = /** @type {HTMLDivElement} */ (ref.current);
    if (eager) {
      paint(el, source, false);
      return;
    }
    el.textContent = source;
    el.classList.add('md-pending');
    sources.set(el, source);
    const io = watcher();
    io.observe(el);
    return () => io.unobserve(el);
  }, [source, eager]);
  return html`<div class="md" ref=${ref}></div>`;
}

/**
 * A reply that is still streaming: fed by the store's stream.
 * @param {{stream: import('./store.js').Stream, onGrow?: () => void}} props
 */
export function StreamingMarkdown({ stream, onGrow }) {
  const ref = useRef(/** @type {HTMLDivElement | null} */ (null));
  useLayoutEffect(() => {
    const el = /** @type {HTMLDivElement} */ (ref.current);
    const view = new StreamView(el, onGrow);
    view.append(stream.text);
    /** @param {string} text */
    const listener = (text) => view.append(text);
    const ended = () => view.finish();
    stream.listeners.add(listener);
    stream.onEnd.add(ended);
    if (!stream.running) view.finish();
    return () => {
      stream.listeners.delete(listener);
      stream.onEnd.delete(ended);
      view.stop();
    };
  }, [stream]);
  return html`<div class="md md-streaming" ref=${ref}></div>`;
}
