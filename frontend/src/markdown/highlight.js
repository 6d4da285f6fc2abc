// Syntax highlighting, loaded only when a reply has a code block: highlight.js's core, then each
// language as its own chunk, the first time a block in that language shows up.

/** @type {Record<string, () => Promise<{default: any}>>} */
const LANGUAGES = {
  bash: () => import('highlight.js/lib/languages/bash'),
  c: () => import('highlight.js/lib/languages/c'),
  cpp: () => import('highlight.js/lib/languages/cpp'),
  csharp: () => import('highlight.js/lib/languages/csharp'),
  css: () => import('highlight.js/lib/languages/css'),
  diff: () => import('highlight.js/lib/languages/diff'),
  dockerfile: () => import('highlight.js/lib/languages/dockerfile'),
  go: () => import('highlight.js/lib/languages/go'),
  ini: () => import('highlight.js/lib/languages/ini'),
  java: () => import('highlight.js/lib/languages/java'),
  javascript: () => import('highlight.js/lib/languages/javascript'),
  json: () => import('highlight.js/lib/languages/json'),
  kotlin: () => import('highlight.js/lib/languages/kotlin'),
  latex: () => import('highlight.js/lib/languages/latex'),
  lua: () => import('highlight.js/lib/languages/lua'),
  makefile: () => import('highlight.js/lib/languages/makefile'),
  markdown: () => import('highlight.js/lib/languages/markdown'),
  perl: () => import('highlight.js/lib/languages/perl'),
  php: () => import('highlight.js/lib/languages/php'),
  plaintext: () => import('highlight.js/lib/languages/plaintext'),
  python: () => import('highlight.js/lib/languages/python'),
  r: () => import('highlight.js/lib/languages/r'),
  ruby: () => import('highlight.js/lib/languages/ruby'),
  rust: () => import('highlight.js/lib/languages/rust'),
  scala: () => import('highlight.js/lib/languages/scala'),
  shell: () => import('highlight.js/lib/languages/shell'),
  sql: () => import('highlight.js/lib/languages/sql'),
  swift: () => import('highlight.js/lib/languages/swift'),
  typescript: () => import('highlight.js/lib/languages/typescript'),
  xml: () => import('highlight.js/lib/languages/xml'),
  yaml: () => import('highlight.js/lib/languages/yaml'),
};

/** @type {Record<string, string>} */
const ALIASES = {
  sh: 'bash', zsh: 'bash', console: 'shell', shellsession: 'shell', 'c++': 'cpp', cc: 'cpp',
  h: 'c', hpp: 'cpp', cs: 'csharp', 'c#': 'csharp', golang: 'go', toml: 'ini', js: 'javascript',
  jsx: 'javascript', mjs: 'javascript', node: 'javascript', kt: 'kotlin', tex: 'latex',
  make: 'makefile', md: 'markdown', pl: 'perl', text: 'plaintext', txt: 'plaintext',
  py: 'python', python3: 'python', rb: 'ruby', rs: 'rust', ts: 'typescript', tsx: 'typescript',
  html: 'xml', xhtml: 'xml', svg: 'xml', yml: 'yaml', docker: 'dockerfile', patch: 'diff',
  postgresql: 'sql', postgres: 'sql', sqlite: 'sql', mysql: 'sql',
};

/** @type {any} */
let hljs = null;
/** @type {Promise<any> | null} */
let loadingCore = null;
/** @type {Map<string, Promise<void>>} */
const loading = new Map();
const loaded = new Set();

/** The language a fence names, as highlight.js knows it, or null. @param {string} name */
export function languageOf(name) {
  const key = name.toLowerCase();
  const lang = ALIASES[key] || key;
  return lang in LANGUAGES ? lang : null;
}

/** Whether blocks in `lang` can be highlighted now, without waiting. @param {string} lang */
export function ready(lang) {
  return hljs !== null && loaded.has(lang);
}

/** Load highlight.js's core and `lang`. @param {string} lang */
export function load(lang) {
  let p = loading.get(lang);
  if (!p) {
    loadingCore ||= import('highlight.js/lib/core').then((m) => {
      hljs = m.default;
      hljs.configure({ ignoreUnescapedHTML: true });
      return hljs;
    });
    p = Promise.all([loadingCore, LANGUAGES[lang]()]).then(([core, mod]) => {
      core.registerLanguage(lang, mod.default);
      loaded.add(lang);
    });
    loading.set(lang, p);
  }
  return p;
}

/** The last text highlighted, and its HTML: a streaming code block is highlighted again only
 * when a line is complete, and the block that then freezes is the same text once more. */
let last = { lang: '', text: '', html: '' };

/** @param {string} text @param {string} lang */
function highlighted(text, lang) {
  if (last.lang !== lang || last.text !== text) {
    const html = hljs.highlight(text, { language: lang, ignoreIllegals: true }).value;
    last = { lang, text, html };
  }
  return last.html;
}

/** @param {string} s */
function escapeText(s) {
  return s.replace(/[&<>]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : '&gt;'));
}

/**
 * Highlight one `<code>` element (its language is loaded). `growing`: the block is still being
 * written; its complete lines are highlighted and the line being written is added as text.
 * @param {HTMLElement} code @param {string} lang @param {boolean} [growing]
 */
export function highlight(code, lang, growing = false) {
  const text = code.textContent || '';
  const cut = growing ? text.lastIndexOf('\n') + 1 : text.length;
  // highlight.js escapes the text it wraps; the rest is escaped here
  code.innerHTML = highlighted(text.slice(0, cut), lang) + escapeText(text.slice(cut));
  code.classList.add('hljs');
}
