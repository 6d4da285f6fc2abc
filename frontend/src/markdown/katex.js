// KaTeX and its stylesheet: a chunk of its own, loaded the first time a reply has math.
import katex from 'katex';
import 'katex/dist/katex.min.css';

/** Typeset every math placeholder inside `root`. @param {ParentNode} root */
export function typeset(root) {
  for (const el of root.querySelectorAll('.math-tex:not([data-typeset])')) {
    const tex = el.textContent || '';
    try {
      katex.render(tex, /** @type {HTMLElement} */ (el), {
        displayMode: el.hasAttribute('data-display'),
        throwOnError: false,
        trust: false,
        strict: 'ignore',
        output: 'htmlAndMathml',
      });
    } catch {
      el.textContent = tex;
    }
    el.setAttribute('data-typeset', '1');
    el.setAttribute('data-tex', tex);
  }
}
