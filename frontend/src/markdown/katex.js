// KaTeX and its stylesheet: a chunk of its own, loaded the first time a reply has math.
import katex from 'katex';
import 'katex/dist/katex.min.css';

/** Typeset formulas by their source: the open block of a streaming reply is drawn again many
 * times with the same formulas in it, and a reopened conversation has them all again. */
const made = new Map();

/** @param {string} tex @param {boolean} display */
function formula(tex, display) {
  const key = `${display ? 'D' : 'I'}${tex}`;
  let html = made.get(key);
  if (html === undefined) {
    html = katex.renderToString(tex, {
      displayMode: display,
      throwOnError: false,
      trust: false,
      strict: 'ignore',
      output: 'htmlAndMathml',
    });
    if (made.size > 5000) made.clear();
    made.set(key, html);
  }
  return html;
}

/** Typeset every math placeholder inside `root`. @param {ParentNode} root */
export function typeset(root) {
  for (const el of root.querySelectorAll('.math-tex:not([data-typeset])')) {
    const tex = el.textContent || '';
    try {
      el.innerHTML = formula(tex, el.hasAttribute('data-display')); // KaTeX's own escaped output
    } catch {
      el.textContent = tex;
    }
    el.setAttribute('data-typeset', '1');
    el.setAttribute('data-tex', tex);
  }
}
