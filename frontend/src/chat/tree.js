// The whole conversation drawn as a tree: each question (a square) and reply (a dot) is a node,
// rows by depth from the top, the path shown a highlighted trunk with its text alongside, the
// other branches forking off it. A node shows its text on hover or focus, and its branch on a
// click or Enter; the arrow keys move along the drawing. A chunk of its own: the page loads it
// when the tree is first opened.
import { html } from 'htm/preact';
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';
import { Dialog } from '../theme/dialog.js';
import { t } from '../i18n/index.js';
import { layout } from './tree-layout.js';
import * as store from './store.js';

/** Pixels between lanes and between rows, around the drawing, and a node's half size. */
const LANE = 28;
const ROW = 32;
const PAD = 16;
const HALF = 12;
const MIN_SCALE = 0.2;
const MAX_SCALE = 1.5;
/** Opening zooms out this far at most to fit the path: its text stays readable. */
const FIT_MIN = 0.75;
/** Under this scale the path's text is left out (it would be too small to read). */
const FAR = 0.55;
/** Width kept for the path's text beside the drawing. */
const TEXT_W = 160;

/** @param {string} s @param {number} max */
function snippet(s, max) {
  const one = s.replace(/[*_`#>|]+/g, '').replace(/\s+/g, ' ').trim();
  return one.length > max ? `${one.slice(0, max - 1)}…` : one || '…';
}

/** @param {store.Msg} m */
const textOf = (m) => m.content || (m.stream ? m.stream.text : '');
/** @param {number} lane */
const cx = (lane) => PAD + lane * LANE + LANE / 2;
/** @param {number} depth @param {number} top where row 0 starts */
const cy = (depth, top) => top + depth * ROW + ROW / 2;
/** @param {number} s */
const clamp = (s) => Math.min(MAX_SCALE, Math.max(MIN_SCALE, s));

/** An edge between two points a row apart: straight down a lane, or a curve into another.
 * @param {number} x1 @param {number} y1 @param {number} x2 @param {number} y2 */
function edge(x1, y1, x2, y2) {
  if (x1 === x2) return `M${x1} ${y1}V${y2}`;
  const ym = (y1 + y2) / 2;
  return `M${x1} ${y1}C${x1} ${ym} ${x2} ${ym} ${x2} ${y2}`;
}

/**
 * @param {{conv: store.Conv, v: number, pick: (id: string) => void}} props
 */
function TreeGraph({ conv, v, pick }) {
  const path = conv.path();
  const lay = useMemo(
    () => layout((p) => conv.children(p), path, (id) => conv.chosen.get(id)),
    [conv, v, conv.leaf],
  );
  const onPath = new Set(path);
  const view = useRef(/** @type {HTMLDivElement | null} */ (null));
  const [scale, setScale] = useState(1);
  const [viewW, setViewW] = useState(0);
  const [ready, setReady] = useState(false);
  const [focusId, setFocusId] = useState(conv.leaf);
  const [hover, setHover] = useState(/** @type {string | null} */ (null));
  const [keyFocus, setKeyFocus] = useState(/** @type {string | null} */ (null));
  /** The scroll position to take once a new scale is drawn. */
  const anchor = useRef(/** @type {{left: number, top: number} | null} */ (null));
  const drag = useRef(/** @type {{x: number, y: number, left: number, top: number} | null} */ (null));

  const active = focusId && lay.places.has(focusId) ? focusId : conv.leaf || lay.order[0];
  const graphW = PAD * 2 + lay.lanes * LANE;
  const width = Math.max(graphW + TEXT_W, viewW / scale);
  // several first questions (the first one edited) hang from a mark of the start, a row above
  const top = lay.roots > 1 ? PAD + ROW : PAD;
  const height = top + PAD + lay.rows.length * ROW;

  /** @param {number} to @param {number} [fx] @param {number} [fy] the point of the view kept */
  const zoom = (to, fx, fy) => {
    const el = view.current;
    if (!el) return;
    const s = clamp(to);
    const x = fx ?? el.clientWidth / 2;
    const y = fy ?? el.clientHeight / 2;
    anchor.current = {
      left: ((el.scrollLeft + x) / scale) * s - x,
      top: ((el.scrollTop + y) / scale) * s - y,
    };
    if (s === scale) place();
    else setScale(s);
  };
  const place = () => {
    const el = view.current;
    const a = anchor.current;
    if (!el || !a) return;
    anchor.current = null;
    el.scrollLeft = Math.max(0, a.left);
    el.scrollTop = Math.max(0, a.top);
  };
  useLayoutEffect(place, [scale]);

  /** The view's height when full (the drawing may be shorter). @param {HTMLElement} el */
  const room = (el) => parseFloat(getComputedStyle(el).maxHeight) || el.clientHeight;

  /** Zoom so that the path fits if it can, and show its leaf. */
  const fitPath = () => {
    const el = view.current;
    if (!el) return;
    const h = room(el);
    const s = Math.min(1, Math.max(FIT_MIN, h / (top + PAD + path.length * ROW)));
    anchor.current = { left: 0, top: (cy(path.length - 1, top) + ROW) * s - h };
    if (s === scale) place();
    else setScale(s);
  };
  /** Zoom out to the whole tree (or as far as a node stays visible). */
  const fitAll = () => {
    const el = view.current;
    if (!el) return;
    const s = clamp(Math.min(1, room(el) / height, el.clientWidth / (graphW + TEXT_W / 2)));
    anchor.current = { left: 0, top: 0 };
    if (s === scale) place();
    else setScale(s);
  };

  // Once the dialog is open (its effect runs after this one): fit, focus the leaf, and follow
  // the view's width; Ctrl+wheel (a touchpad's pinch) zooms around the pointer.
  const zoomRef = useRef(zoom);
  zoomRef.current = zoom;
  useEffect(() => {
    const el = view.current;
    if (!el) return undefined;
    const frame = requestAnimationFrame(() => {
      setViewW(el.clientWidth);
      fitPath();
      const leaf = el.querySelector('[aria-current="true"]');
      if (leaf instanceof HTMLElement) leaf.focus({ preventScroll: true });
      setReady(true);
    });
    const sized = new ResizeObserver(() => setViewW(el.clientWidth));
    sized.observe(el);
    const wheel = (/** @type {WheelEvent} */ e) => {
      if (!e.ctrlKey) return;
      e.preventDefault();
      const r = el.getBoundingClientRect();
      const s = el.dataset.scale ? Number(el.dataset.scale) : 1;
      zoomRef.current(s * Math.exp(-e.deltaY / 300), e.clientX - r.left, e.clientY - r.top);
    };
    el.addEventListener('wheel', wheel, { passive: false });
    return () => {
      cancelAnimationFrame(frame);
      sized.disconnect();
      el.removeEventListener('wheel', wheel);
    };
  }, []);

  /** @param {KeyboardEvent} e */
  const onKey = (e) => {
    const target = /** @type {HTMLElement} */ (e.target);
    const id = target.dataset ? target.dataset.id : undefined;
    const p = id ? lay.places.get(id) : undefined;
    if (!id || !p) return;
    /** @type {string | null | undefined} */
    let next = null;
    if (e.key === 'ArrowUp') next = p.parent;
    else if (e.key === 'ArrowDown') next = p.main;
    else if (e.key === 'ArrowLeft' || e.key === 'ArrowRight') {
      const row = lay.rows[p.depth];
      next = row[row.indexOf(id) + (e.key === 'ArrowLeft' ? -1 : 1)];
    } else if (e.key === 'Home') next = lay.rows[0] && lay.rows[0][0];
    else if (e.key === 'End') {
      let end = p;
      while (end.main) end = /** @type {typeof p} */ (lay.places.get(end.main));
      next = end.id;
    } else if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      pick(id);
      return;
    } else return;
    e.preventDefault();
    // focus moves at once (keys pressed before the next render go from there)
    const el = next && view.current && view.current.querySelector(`[data-id="${CSS.escape(next)}"]`);
    if (el instanceof HTMLElement) el.focus();
  };

  /** @param {PointerEvent} e */
  const dragStart = (e) => {
    const el = view.current;
    const target = /** @type {Element} */ (e.target);
    if (!el || e.pointerType !== 'mouse' || e.button !== 0 || target.closest('.tree-node, .tree-label')) return;
    drag.current = { x: e.clientX, y: e.clientY, left: el.scrollLeft, top: el.scrollTop };
    el.setPointerCapture(e.pointerId);
  };
  /** @param {PointerEvent} e */
  const dragMove = (e) => {
    const el = view.current;
    const d = drag.current;
    if (!el || !d) return;
    el.scrollLeft = d.left - (e.clientX - d.x);
    el.scrollTop = d.top - (e.clientY - d.y);
  };
  const dragEnd = () => {
    drag.current = null;
  };

  const edges = lay.order.filter((id) => lay.places.get(id)?.parent);
  // the path's edges last, over the others
  edges.sort((a, b) => Number(onPath.has(a)) - Number(onPath.has(b)));
  const shown = hover ?? keyFocus;

  return html`<div class="tree-bar">
      <p class="tree-hint" id="tree-hint">${t('chat.tree.hint')}</p>
      <div class="tree-zoom" role="group" aria-label=${t('chat.tree.zoom')}>
        <button type="button" class="icon-btn" aria-label=${t('chat.tree.zoomOut')}
          onClick=${() => zoom(scale / 1.25)}>−</button>
        <button type="button" class="icon-btn" aria-label=${t('chat.tree.zoomIn')}
          onClick=${() => zoom(scale * 1.25)}>+</button>
        <button type="button" class="btn btn-ghost tree-fit" onClick=${fitPath}>${t('chat.tree.fitPath')}</button>
        <button type="button" class="btn btn-ghost tree-fit" onClick=${fitAll}>${t('chat.tree.fitAll')}</button>
      </div>
    </div>
    <div class="tree-legend" aria-hidden="true">
      <span><i class="tree-key tree-user"></i>${t('chat.tree.question')}</span>
      <span><i class="tree-key tree-assistant"></i>${t('chat.tree.reply')}</span>
      <span><i class="tree-key tree-path"></i>${t('chat.tree.path')}</span>
      <span><i class="tree-key tree-here"></i>${t('chat.tree.here')}</span>
    </div>
    <div class="tree-view" ref=${view} data-ready=${ready ? '1' : null} data-scale=${scale}
      onPointerDown=${dragStart} onPointerMove=${dragMove} onPointerUp=${dragEnd} onPointerCancel=${dragEnd}>
      <div class="tree-sizer" style=${`width:${width * scale}px;height:${height * scale}px`}>
        <div class=${`tree${scale < FAR ? ' tree-far' : ''}`} role="tree" aria-label=${t('chat.tree.title')}
          aria-describedby="tree-hint" onKeyDown=${onKey}
          style=${`width:${width}px;height:${height}px;transform:scale(${scale})`}>
          <svg class="tree-edges" width=${width} height=${height} aria-hidden="true">
            ${edges.map((id) => {
              const p = /** @type {import('./tree-layout.js').Place} */ (lay.places.get(id));
              const up = /** @type {import('./tree-layout.js').Place} */ (lay.places.get(/** @type {string} */ (p.parent)));
              const d = edge(cx(up.lane), cy(up.depth, top), cx(p.lane), cy(p.depth, top));
              return html`<path key=${id} class=${`tree-edge${onPath.has(id) ? ' on-path' : ''}`} d=${d} />`;
            })}
            ${lay.roots > 1 && lay.rows[0].map((id) => {
              const p = /** @type {import('./tree-layout.js').Place} */ (lay.places.get(id));
              const d = edge(cx(0), PAD + ROW / 2, cx(p.lane), cy(0, top));
              return html`<path key=${`s${id}`} class=${`tree-start-edge${onPath.has(id) ? ' on-path' : ''}`} d=${d} />`;
            })}
            ${lay.roots > 1 && html`<circle class="tree-start" cx=${cx(0)} cy=${PAD + ROW / 2} r="4" />`}
          </svg>
          ${path.map((id) => {
            const m = /** @type {store.Msg} */ (conv.messages.get(id));
            const p = lay.places.get(id);
            if (!p) return null;
            return html`<div key=${`t${id}`} aria-hidden="true"
              class=${`tree-label tree-label-${m.role}${id === conv.leaf ? ' is-current' : ''}`}
              style=${`left:${graphW - PAD / 2}px;top:${cy(p.depth, top) - ROW / 2}px`}
              onClick=${() => pick(id)}>${snippet(textOf(m), 140)}</div>`;
          })}
          ${lay.order.map((id) => {
            const m = /** @type {store.Msg} */ (conv.messages.get(id));
            const p = /** @type {import('./tree-layout.js').Place} */ (lay.places.get(id));
            const here = onPath.has(id);
            const current = id === conv.leaf;
            const who = m.role === 'user' ? t('chat.you') : t('chat.assistant');
            return html`<div key=${id} role="treeitem" data-id=${id} tabindex=${id === active ? '0' : '-1'}
              class=${`tree-node tree-${m.role === 'user' ? 'user' : 'assistant'}${here ? ' on-path' : ''}${current ? ' is-current' : ''}`}
              style=${`left:${cx(p.lane) - HALF}px;top:${cy(p.depth, top) - HALF}px`}
              aria-label=${`${who}: ${snippet(textOf(m), 100)}`}
              aria-level=${p.depth + 1} aria-setsize=${p.of} aria-posinset=${p.pos}
              aria-expanded=${p.kids.length ? 'true' : null}
              aria-selected=${here ? 'true' : 'false'} aria-current=${current ? 'true' : null}
              onClick=${() => pick(id)}
              onFocus=${(/** @type {FocusEvent} */ e) => {
                setFocusId(id);
                const el = /** @type {HTMLElement} */ (e.currentTarget);
                setKeyFocus(el.matches(':focus-visible') ? id : null);
              }}
              onBlur=${() => setKeyFocus(null)}
              onPointerEnter=${(/** @type {PointerEvent} */ e) => e.pointerType === 'mouse' && setHover(id)}
              onPointerLeave=${() => setHover(null)}></div>`;
          })}
        </div>
        ${shown && lay.places.has(shown) && html`<${Preview} conv=${conv} id=${shown}
          place=${/** @type {import('./tree-layout.js').Place} */ (lay.places.get(shown))}
          scale=${scale} top=${top} view=${view.current} />`}
      </div>
    </div>`;
}

/** Width of the preview card, at most. */
const CARD_W = 288;

/**
 * A node's text beside it: right of it where there is room, else left, else below.
 * @param {{conv: store.Conv, id: string, place: import('./tree-layout.js').Place, scale: number,
 *   top: number, view: HTMLDivElement | null}} props
 */
function Preview({ conv, id, place, scale, top: top0, view }) {
  const m = /** @type {store.Msg} */ (conv.messages.get(id));
  const x = cx(place.lane) * scale;
  const y = cy(place.depth, top0) * scale;
  const gap = HALF * scale + 8;
  const left0 = view ? view.scrollLeft : 0;
  const viewW = view ? view.clientWidth : 600;
  const low = view ? y + 110 > view.scrollTop + view.clientHeight : false;
  const w = Math.min(CARD_W, viewW - 16);
  let left = x + gap;
  // beside the node, its top at the node (or its bottom, low in the view)...
  let top = low ? y + 14 : y - 14;
  if (left + w > left0 + viewW - 4) left = x - gap - w;
  if (left < left0 + 4) {
    // ...or, with no room on either side (a phone), under it (or over it)
    left = Math.min(Math.max(x - w / 2, left0 + 4), left0 + viewW - w - 4);
    top = low ? y - gap : y + gap;
  }
  const parts = [m.role === 'user' ? t('chat.you') : t('chat.assistant')];
  if (place.of > 1) parts.push(t('chat.tree.version', { n: place.pos, of: place.of }));
  if (id === conv.leaf) parts.push(t('chat.tree.here'));
  return html`<div class=${`tree-preview${low ? ' above' : ''}`} aria-hidden="true"
    style=${`left:${left}px;top:${top}px;width:${w}px`}>
    <div class="tree-preview-head">${parts.join(' · ')}</div>
    <div class="tree-preview-text">${snippet(textOf(m), 280)}</div>
  </div>`;
}

/**
 * `onShow` shows the branch through a message (the chat draws the path down to it).
 * @param {{conv: store.Conv, v: number, onShow: (id: string) => void, onClose: () => void}} props
 */
export function TreeView({ conv, v, onShow, onClose }) {
  /** @param {string} id */
  const pick = (id) => {
    onShow(id);
    onClose();
    requestAnimationFrame(() => {
      const el = document.querySelector(`.msg[data-id="${CSS.escape(id)}"]`);
      if (el) el.scrollIntoView({ block: 'start' });
    });
  };
  return html`<${Dialog} open=${true} onClose=${onClose} title=${t('chat.tree.title')} wide=${true} id="tree-dialog">
    <${TreeGraph} conv=${conv} v=${v} pick=${pick} />
  </${Dialog}>`;
}
