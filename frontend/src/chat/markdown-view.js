// A finished reply's Markdown. Replies near the screen are rendered at once; the others when
// they scroll near it, so a long conversation opens fast. Until then the text shows as it is.
import { html } from 'htm/preact';
import { useLayoutEffect, useRef } from 'preact/hooks';
import { renderHtml } from '../markdown/md.js';
import { enhance } from '../markdown/enhance.js';
import { StreamView } from '../markdown/stream.js';

/** @type {Map<string, string>} rendered HTML by source, for conversations opened again */
const cache = new Map();
/** @type {WeakMap<Element, string>} */
const sources = new WeakMap();

/** @param {HTMLElement} el @param {string} src */
function paint(el, src) {
  let out = cache.get(src);
  if (out === undefined) {
    out = renderHtml(src);
    if (cache.size > 2000) cache.clear();
    cache.set(src, out);
  }
  el.innerHTML = out;
  el.classList.remove('md-pending');
  enhance(el);
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
        const src = sources.get(el);
        if (src !== undefined) paint(el, src);
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
    if (eager || cache.has(source)) {
      paint(el, source);
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
