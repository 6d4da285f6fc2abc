/**
 * Keyboard shortcuts for the whole page, and the dialog that lists them (opened with `?`).
 * Keys typed into a text field are left alone, except the ones with Ctrl/Cmd.
 */
import { html } from 'htm/preact';
import { signal } from '@preact/signals';
import { useEffect } from 'preact/hooks';
import { t } from '../i18n/index.js';
import { Dialog } from '../theme/dialog.js';
import { focusSearch, newChat, toggleSidebar, sidebarOpen, wide } from '../sidebar/sidebar.js';

const mac = /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent);
const MOD = mac ? '⌘' : 'Ctrl';

/** Whether the list of shortcuts is open. */
export const helpOpen = signal(false);

/** What each shortcut does, as [keys, label key]. */
const SHORTCUTS = [
  [[MOD, 'K'], 'shortcuts.search'],
  [[MOD, 'Shift', 'O'], 'shortcuts.newChat'],
  [[MOD, 'Shift', 'S'], 'shortcuts.sidebar'],
  [['Shift', 'Esc'], 'shortcuts.focus'],
  [['Enter'], 'shortcuts.send'],
  [['Shift', 'Enter'], 'shortcuts.newline'],
  [['?'], 'shortcuts.help'],
  [['Esc'], 'shortcuts.close'],
];

function typing(target) {
  return (
    target instanceof HTMLElement &&
    (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName))
  );
}

function focusInput() {
  const input = document.getElementById('chat-input');
  if (input) input.focus();
}

/** @param {KeyboardEvent} event */
function onKey(event) {
  const mod = event.ctrlKey || event.metaKey;
  const key = event.key.toLowerCase();
  if (mod && !event.shiftKey && !event.altKey && key === 'k') {
    event.preventDefault();
    focusSearch();
  } else if (mod && event.shiftKey && key === 'o') {
    event.preventDefault();
    newChat();
  } else if (mod && event.shiftKey && key === 's') {
    event.preventDefault();
    toggleSidebar();
  } else if (event.shiftKey && event.key === 'Escape') {
    event.preventDefault();
    focusInput();
  } else if (event.key === 'Escape' && !wide.value && sidebarOpen.value && !document.querySelector('dialog[open]')) {
    toggleSidebar(false);
  } else if (event.key === '?' && !mod && !typing(event.target) && !document.querySelector('dialog[open]')) {
    event.preventDefault();
    helpOpen.value = true;
  }
}

export function ShortcutsHelp() {
  useEffect(() => {
    addEventListener('keydown', onKey);
    return () => removeEventListener('keydown', onKey);
  }, []);
  return html`<${Dialog}
    open=${helpOpen.value}
    onClose=${() => {
      helpOpen.value = false;
    }}
    title=${t('shortcuts.title')}
    id="shortcuts-dialog"
  >
    <dl class="shortcut-list">
      ${SHORTCUTS.map(
        ([keys, label]) => html`<dt>${t(label)}</dt>
          <dd>${keys.map((k, i) => html`${i > 0 ? ' + ' : ''}<kbd>${k}</kbd>`)}</dd>`,
      )}
    </dl>
  <//>`;
}

/** A button that opens the list (for the top bar or a menu). */
export function ShortcutsButton() {
  return html`<button
    type="button"
    class="icon-btn"
    aria-label=${t('shortcuts.open')}
    title=${t('shortcuts.open')}
    aria-haspopup="dialog"
    onClick=${() => {
      helpOpen.value = true;
    }}
  >
    <svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.8" aria-hidden="true">
      <path d="M3 7h18v10H3zM7 11h1M11 11h1M15 11h1M8 14h8" />
    </svg>
  </button>`;
}
