// What rendered HTML gets once it is in the page: a copy button and syntax highlighting on code
// blocks, and typeset math. Highlighting and KaTeX are loaded the first time they are needed.
import { languageOf, ready, load, highlight } from './highlight.js';
import { t } from '../i18n/index.js';
import { later } from './idle.js';

/** @type {Promise<typeof import('./katex.js')> | null} */
let katexModule = null;

/** @param {HTMLButtonElement} button @param {HTMLElement} code */
async function copy(button, code) {
  const text = code.textContent || '';
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = document.createElement('textarea');
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand('copy');
    area.remove();
  }
  button.textContent = t('chat.copied');
  setTimeout(() => {
    button.textContent = t('chat.copy');
  }, 1500);
}

/** @param {HTMLElement} pre */
function addCopyButton(pre) {
  const code = /** @type {HTMLElement | null} */ (pre.querySelector('code'));
  if (!code) return;
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'copy-code';
  button.textContent = t('chat.copy');
  button.setAttribute('aria-label', t('chat.copy.label'));
  button.addEventListener('click', () => copy(button, code));
  pre.prepend(button);
}

/**
 * Enhance the rendered markdown inside `root`.
 * @param {HTMLElement} root
 * @param {{live?: boolean, defer?: boolean}} [opts] `live`: the block is still growing (its
 *   complete lines are highlighted, and only while it is short); `defer`: highlight and typeset
 *   when the page is idle (a finished reply shown again, or one far from the screen)
 */
export function enhance(root, opts = {}) {
  for (const pre of root.querySelectorAll('pre:not([data-enhanced])')) {
    const el = /** @type {HTMLElement} */ (pre);
    el.setAttribute('data-enhanced', '1');
    addCopyButton(el);
    const code = /** @type {HTMLElement | null} */ (el.querySelector('code'));
    if (!code) continue;
    const m = /(?:^|\s)language-(\S+)/.exec(code.className);
    const lang = m ? languageOf(m[1]) : null;
    if (!lang) continue;
    el.setAttribute('data-lang', lang);
    const paint = () => {
      if (code.isConnected && !code.classList.contains('hljs')) highlight(code, lang);
    };
    if (ready(lang)) {
      if (opts.defer) later(paint);
      else if (!opts.live) highlight(code, lang);
      else if ((code.textContent || '').length < 4000) highlight(code, lang, true);
    } else {
      load(lang).then(() => (opts.defer ? later(paint) : paint()));
    }
  }
  if (root.querySelector('.math-tex:not([data-typeset])')) {
    katexModule ||= import('./katex.js');
    katexModule.then((k) => (opts.defer ? later(() => k.typeset(root)) : k.typeset(root)));
  }
}
