// Markdown that grows while a reply streams. The source is split into top-level blocks: every
// block but the last is finished, rendered once and kept; only the open last block is rendered
// again, in an animation frame at most every GAP_MS (more apart when rendering is slow), so a
// reply of thousands of pieces is a few hundred small renders. When the reply ends the whole text is rendered once
// more only when it defines link references (which can change an earlier block), so what stays
// is what a finished reply looks like, with no flash.
import { blocks, renderTokens, renderHtml } from './md.js';
import { enhance } from './enhance.js';

const REFERENCE = /^ {0,3}\[[^\]]+\]:/m;
/** The least time between two renders of the open block. */
const GAP_MS = 40;
/** The time a render may spend freezing finished blocks before it leaves the rest to the next. */
const FREEZE_MS = 12;

/** Where line `line` of `text` starts. @param {string} text @param {number} line */
function lineOffset(text, line) {
  let pos = 0;
  for (let i = 0; i < line; i++) {
    const nl = text.indexOf('\n', pos);
    if (nl < 0) return text.length;
    pos = nl + 1;
  }
  return pos;
}

export class StreamView {
  /** @param {HTMLElement} el @param {() => void} [onRender] called after each rendered frame */
  constructor(el, onRender) {
    this.el = el;
    this.onRender = onRender;
    this.src = '';
    this.offset = 0; // where the open part of the source starts
    /** @type {string[]} */
    this.frozen = [];
    this.liveHtml = '';
    this.frame = 0;
    this.nextAt = 0;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.timer = undefined;
    this.live = document.createElement('div');
    this.live.className = 'md-live';
    el.replaceChildren(this.live);
  }

  /** @param {string} text */
  append(text) {
    if (!text) return;
    this.src += text.replace(/\r\n?/g, '\n');
    this.schedule();
  }

  schedule() {
    if (this.frame) return;
    // A render at most every GAP_MS, and fewer when rendering is slow (a long open block on a
    // slow machine): the page keeps answering input while the reply catches up. The render
    // itself is done in an animation frame, just before the page is drawn.
    const go = () => {
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        const started = performance.now();
        this.render();
        const took = performance.now() - started;
        this.nextAt = performance.now() + Math.max(GAP_MS, took * 3);
      });
    };
    const wait = this.nextAt - performance.now();
    if (wait > 0) {
      this.frame = -1;
      this.timer = setTimeout(go, wait);
    } else go();
  }

  /** @param {boolean} [final] the source is whole: highlight even a long last block */
  render(final = false) {
    const tail = this.src.slice(this.offset);
    const parts = blocks(tail);
    if (parts.length >= 2) {
      // Freeze the finished blocks, a few milliseconds' worth at a time: a reply attached to
      // half-way (after a reload) catches up over a few frames instead of in one long task.
      const until = performance.now() + FREEZE_MS;
      let next = 0;
      while (next < parts.length - 1 && (final || next === 0 || performance.now() < until)) {
        const html = renderTokens(parts[next].tokens);
        this.frozen.push(html);
        const div = document.createElement('div');
        div.className = 'md-block';
        div.innerHTML = html;
        enhance(div);
        this.el.insertBefore(div, this.live);
        next += 1;
      }
      this.offset += lineOffset(tail, parts[next].start);
      if (next < parts.length - 1) {
        this.liveHtml = '';
        this.live.replaceChildren();
        this.schedule();
        return;
      }
      this.liveHtml = renderTokens(parts[next].tokens);
    } else {
      this.liveHtml = parts.length ? renderTokens(parts[0].tokens) : '';
    }
    this.live.innerHTML = this.liveHtml;
    enhance(this.live, { live: !final });
    if (this.onRender) this.onRender();
  }

  /** The reply ended: render its last block once more, whole. */
  finish() {
    this.stop();
    this.render(true);
    // A link reference definition can change blocks before it: then the whole text again.
    if (REFERENCE.test(this.src)) {
      const whole = renderHtml(this.src);
      if (whole !== this.frozen.join('') + this.liveHtml) {
        const div = document.createElement('div');
        div.className = 'md-block';
        div.innerHTML = whole;
        enhance(div);
        this.el.replaceChildren(div);
      }
    }
    if (this.onRender) this.onRender();
  }

  stop() {
    if (this.frame > 0) cancelAnimationFrame(this.frame);
    clearTimeout(this.timer);
    this.frame = 0;
  }
}
