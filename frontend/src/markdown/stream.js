// Markdown that grows while a reply streams. The source is split into top-level blocks: every
// block but the last is finished, rendered once and kept; only the open last block is rendered
// again, at most once per animation frame. When the reply ends the whole text is rendered once
// more only when it defines link references (which can change an earlier block), so what stays
// is what a finished reply looks like, with no flash.
import { blocks, renderTokens, renderHtml } from './md.js';
import { enhance } from './enhance.js';

const REFERENCE = /^ {0,3}\[[^\]]+\]:/m;

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
    // At most one render a frame, and fewer when rendering is slow (a long open block on a
    // slow machine): the page keeps answering input while the reply catches up.
    const wait = this.nextAt - performance.now();
    const go = () => {
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        const started = performance.now();
        this.render();
        const took = performance.now() - started;
        this.nextAt = took > 8 ? performance.now() + took * 2 : 0;
      });
    };
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
      const last = parts[parts.length - 1];
      for (const part of parts.slice(0, -1)) {
        const html = renderTokens(part.tokens);
        this.frozen.push(html);
        const div = document.createElement('div');
        div.className = 'md-block';
        div.innerHTML = html;
        enhance(div);
        this.el.insertBefore(div, this.live);
      }
      let line = 0;
      let pos = 0;
      while (line < last.start) {
        const nl = tail.indexOf('\n', pos);
        if (nl < 0) break;
        pos = nl + 1;
        line += 1;
      }
      this.offset += pos;
      this.liveHtml = renderTokens(last.tokens);
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
