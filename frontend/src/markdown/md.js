// Markdown to safe HTML. markdown-it parses with raw HTML turned off; DOMPurify cleans what it
// writes anyway (model output is untrusted): links open in a new tab without an opener or a
// referrer, script-like links lose their target, and images load only from this page's origin,
// since a remote image URL is how an injected prompt leaks what it read.
import MarkdownIt from 'markdown-it';
import texmath from 'markdown-it-texmath';
import DOMPurify from 'dompurify';

/** @param {string} s */
function escapeHtml(s) {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// Math is written as a placeholder holding the TeX source; KaTeX (loaded only when a reply has
// math) turns the placeholders into formulas after the HTML is in the page.
const mathPlaceholder = {
  /** @param {string} tex @param {{displayMode?: boolean}} opts */
  renderToString(tex, opts) {
    const tag = opts && opts.displayMode ? 'div' : 'span';
    const display = opts && opts.displayMode ? ' data-display="1"' : '';
    return `<${tag} class="math-tex"${display}>${escapeHtml(tex)}</${tag}>`;
  },
};

export const md = new MarkdownIt({ html: false, linkify: true, typographer: false, breaks: false });
md.use(texmath, { engine: mathPlaceholder, delimiters: ['dollars', 'brackets'] });

const SAFE_LINK = /^(?:https?:|mailto:|#|\/(?!\/))/i;

/** @param {string} src */
function sameOrigin(src) {
  try {
    return new URL(src, location.href).origin === location.origin;
  } catch {
    return false;
  }
}

DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  const el = /** @type {Element} */ (node);
  if (el.tagName === 'A') {
    const href = el.getAttribute('href');
    if (href !== null && !SAFE_LINK.test(href.trim())) el.removeAttribute('href');
    if (el.hasAttribute('href')) {
      el.setAttribute('target', '_blank');
      el.setAttribute('rel', 'noopener noreferrer');
    }
  } else if (el.tagName === 'IMG') {
    const src = el.getAttribute('src') || '';
    el.removeAttribute('srcset');
    if (!src || !sameOrigin(src) || /^\/\//.test(src)) {
      el.removeAttribute('src');
      el.setAttribute('data-blocked-src', src.slice(0, 500));
      el.setAttribute('class', 'blocked-img');
    } else {
      el.setAttribute('loading', 'lazy');
      el.setAttribute('referrerpolicy', 'no-referrer');
    }
  }
});

const PURIFY = {
  USE_PROFILES: { html: true },
  ADD_ATTR: ['target'],
  FORBID_TAGS: ['style', 'form', 'input', 'button', 'textarea', 'select', 'iframe', 'svg', 'math'],
  FORBID_ATTR: ['style', 'srcset', 'action', 'formaction'],
};
// Set once: given with every call, DOMPurify would parse the config again each time, which is a
// fifth of its work on the small pieces a streaming reply is cleaned in.
DOMPurify.setConfig(PURIFY);

/** Clean HTML from markdown-it. @param {string} html */
export function purify(html) {
  return /** @type {string} */ (DOMPurify.sanitize(html));
}

/** The safe HTML of a whole markdown text. @param {string} src */
export function renderHtml(src) {
  return purify(md.render(src));
}

/** Top-level block tokens of `src` with their line ranges. @param {string} src */
export function blocks(src) {
  const tokens = md.parse(src, {});
  /** @type {Array<{start: number, end: number, tokens: any[]}>} */
  const out = [];
  let cur = null;
  for (const tok of tokens) {
    if (tok.level === 0 && (tok.nesting === 1 || tok.nesting === 0) && tok.map) {
      cur = { start: tok.map[0], end: tok.map[1], tokens: [tok] };
      out.push(cur);
    } else if (cur) {
      cur.tokens.push(tok);
    }
  }
  return out;
}

/** Safe HTML of a block's tokens. @param {any[]} tokens */
export function renderTokens(tokens) {
  return purify(md.renderer.render(tokens, md.options, {}));
}

/** Do once the work markdown-it and DOMPurify do on their first use (compiling linkify's
 * patterns, setting up the sanitiser), while the page waits for a conversation to arrive. */
export function warm() {
  purify(md.render('*a* https://example.invalid $x$'));
}
