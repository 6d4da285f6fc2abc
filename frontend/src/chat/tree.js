// The whole conversation as a tree: every question and reply with its branches, the path shown
// marked, and any node a click away from being the branch shown.
import { html } from 'htm/preact';
import { useEffect, useRef } from 'preact/hooks';
import { Dialog } from '../theme/dialog.js';
import { t } from '../i18n/index.js';
import * as store from './store.js';

/** @param {string} s */
function snippet(s) {
  const one = s.replace(/[*_`#>|]+/g, '').replace(/\s+/g, ' ').trim();
  return one.length > 60 ? `${one.slice(0, 57)}…` : one || '…';
}

/**
 * @param {{conv: store.Conv, parent: string | null, onPath: Set<string>, pick: (id: string) => void}} props
 */
function Branches({ conv, parent, onPath, pick }) {
  const kids = conv.children(parent);
  if (!kids.length) return null;
  return html`<ul role="group" class=${kids.length > 1 ? 'tree-fork' : ''}>
    ${kids.map((id) => {
      const m = /** @type {store.Msg} */ (conv.messages.get(id));
      const here = onPath.has(id);
      return html`<li role="treeitem" aria-expanded="true" aria-selected=${here ? 'true' : 'false'}
          class=${`tree-node${here ? ' on-path' : ''}`}>
        <button type="button" class=${`tree-btn tree-${m.role}`} data-id=${id}
          aria-current=${here && id === conv.leaf ? 'true' : null}
          onClick=${() => pick(id)}>
          <span class="tree-role">${m.role === 'user' ? t('chat.you') : t('chat.assistant')}</span>
          <span class="tree-text">${snippet(m.content || (m.stream ? m.stream.text : ''))}</span>
        </button>
        <${Branches} conv=${conv} parent=${id} onPath=${onPath} pick=${pick} />
      </li>`;
    })}
  </ul>`;
}

/**
 * `onShow` shows the branch through a message (the chat draws the path down to it).
 * @param {{conv: store.Conv, v: number, onShow: (id: string) => void, onClose: () => void}} props
 */
export function TreeView({ conv, onShow, onClose }) {
  const box = useRef(/** @type {HTMLDivElement | null} */ (null));
  useEffect(() => {
    const cur = box.current && box.current.querySelector('[aria-current="true"]');
    if (cur) /** @type {HTMLElement} */ (cur).scrollIntoView({ block: 'center' });
  }, []);
  const onPath = new Set(conv.path());
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
    <p class="tree-hint">${t('chat.tree.hint')}</p>
    <div class="tree" ref=${box} role="tree" aria-label=${t('chat.tree.title')}>
      <${Branches} conv=${conv} parent=${null} onPath=${onPath} pick=${pick} />
    </div>
  </${Dialog}>`;
}
