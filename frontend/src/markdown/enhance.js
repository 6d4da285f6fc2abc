// What rendered HTML gets once it is in the page: a copy button and syntax highlighting on code
// blocks, and typeset math. Highlighting and KaTeX are loaded the first time they are needed.
import { languageOf, ready, load, highlight } from './highlight.js';
import { t } from '../i18n/index.js';

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
 * @param {{live?: boolean}} [opts] `live`: the block is still growing (highlight only if cheap)
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
    if (ready(lang)) {
      if (!opts.live || (code.textContent || '').length < 4000) highlight(code, lang);
    } else {
      load(lang).then(() => {
        if (code.isConnected && !code.classList.contains('hljs')) highlight(code, lang);
      });
    }
  }
  if (root.querySelector('.math-tex:not([data-typeset])')) {
    katexModule ||= import('./katex.js');
    katexModule.then((k) => k.typeset(root));
  }
}
