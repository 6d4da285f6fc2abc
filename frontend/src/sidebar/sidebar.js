/**
 * The conversation list: new chat, search (Ctrl-K), the conversations grouped by day with the
 * pinned ones on top, and rename / pin / delete on each. On a phone it is a drawer over the
 * page; on a wide screen a column that can be hidden.
 */
import { html } from 'htm/preact';
import { signal, computed } from '@preact/signals';
import { useEffect, useRef, useState } from 'preact/hooks';
import { conversationId, navigate, me } from '../state.js';
import { t } from '../i18n/index.js';
import { Icon } from '../theme/icons.js';
import { groupConversations } from './groups.js';
import { Toasts } from '../theme/toast.js';
import {
  visible,
  query,
  loading,
  failed,
  hasMore,
  reload,
  loadMore,
  search,
  rename,
  setPinned,
  remove,
} from './store.js';

const WIDE = '(min-width: 768px)';
const STORAGE_KEY = 'chatgate.sidebar';
const wideQuery = matchMedia(WIDE);
/** True on a screen wide enough for a sidebar column; false on a phone (a drawer). */
export const wide = signal(wideQuery.matches);
wideQuery.addEventListener('change', (e) => {
  wide.value = e.matches;
});

/** Whether the column is shown on a wide screen (remembered). */
const columnOpen = signal(localStorage.getItem(STORAGE_KEY) !== 'closed');
/** Whether the drawer is open on a phone (starts closed). */
const drawerOpen = signal(false);
/** Whether the sidebar is shown, whichever form it has. */
export const sidebarOpen = computed(() => (wide.value ? columnOpen.value : drawerOpen.value));

export function toggleSidebar(open = !sidebarOpen.value) {
  if (wide.value) {
    columnOpen.value = open;
    try {
      localStorage.setItem(STORAGE_KEY, open ? 'open' : 'closed');
    } catch {
      /* private mode */
    }
  } else {
    drawerOpen.value = open;
  }
}

/** Open the sidebar and put the cursor in the search box (Ctrl-K). */
export function focusSearch() {
  toggleSidebar(true);
  requestAnimationFrame(() => {
    const input = document.getElementById('sidebar-search');
    if (input instanceof HTMLInputElement) {
      input.focus();
      input.select();
    }
  });
}

/**
 * The drawer over the page keeps the focus while it is open: Tab from its last control goes to
 * its first, Shift+Tab from its first to its last.
 * @param {Element} root @param {KeyboardEvent} event
 */
function keepFocusIn(root, event) {
  const controls = /** @type {HTMLElement[]} */ ([
    ...root.querySelectorAll('a[href], button:not([disabled]), input:not([disabled])'),
  ]).filter((el) => el.offsetParent !== null);
  if (!controls.length) return;
  const first = controls[0];
  const last = controls[controls.length - 1];
  if (event.shiftKey && document.activeElement === first) {
    event.preventDefault();
    last.focus();
  } else if (!event.shiftKey && document.activeElement === last) {
    event.preventDefault();
    first.focus();
  }
}

/** Start a new chat (and close the drawer on a phone). */
export function newChat() {
  navigate('/');
  if (!wide.value) drawerOpen.value = false;
  requestAnimationFrame(() => document.getElementById('chat-input')?.focus());
}

/** The button in the top bar that shows or hides the sidebar. */
export function SidebarToggle() {
  return html`<button
    type="button"
    class="icon-btn sidebar-toggle"
    aria-label=${sidebarOpen.value ? t('sidebar.hide') : t('sidebar.show')}
    aria-expanded=${sidebarOpen.value ? 'true' : 'false'}
    aria-controls="sidebar"
    onClick=${() => toggleSidebar()}
  >
    <${Icon} name=${wide.value ? 'sidebar' : 'menu'} />
  </button>`;
}

function Item({ conversation }) {
  const [editing, setEditing] = useState(false);
  const input = useRef(/** @type {HTMLInputElement|null} */ (null));
  const title = conversation.title || t('sidebar.untitled');
  const current = conversationId.value === conversation.id;

  useEffect(() => {
    if (editing) input.current?.select();
  }, [editing]);

  const open = (event) => {
    if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    navigate(`/c/${conversation.id}`);
    if (!wide.value) drawerOpen.value = false;
  };
  const finish = (save) => {
    // Enter saves, and the blur that follows as the field goes away must not save again.
    if (!input.current || input.current.dataset.done) return;
    input.current.dataset.done = '1';
    const value = input.current.value;
    setEditing(false);
    if (save && value.trim() && value.trim() !== conversation.title) rename(conversation.id, value);
  };

  if (editing) {
    return html`<li class="conv-item" aria-current=${current ? 'page' : undefined}>
      <input
        ref=${input}
        class="input conv-rename"
        aria-label=${t('sidebar.renameLabel')}
        value=${conversation.title || ''}
        maxlength="255"
        onKeyDown=${(e) => {
          if (e.key === 'Enter') finish(true);
          else if (e.key === 'Escape') {
            e.stopPropagation();
            finish(false);
          }
        }}
        onBlur=${() => finish(true)}
      />
    </li>`;
  }
  return html`<li
    class="conv-item"
    aria-current=${current ? 'page' : undefined}
    data-id=${conversation.id}
  >
    <a class="conv-link" href=${`/c/${conversation.id}`} onClick=${open} title=${title}>
      ${conversation.pinned && html`<${Icon} name="pin" />`}
      <span class="title">${title}</span>
    </a>
    <span class="conv-actions">
      <button
        type="button"
        class="icon-btn"
        aria-label=${conversation.pinned
          ? t('sidebar.unpin', { title })
          : t('sidebar.pin', { title })}
        aria-pressed=${conversation.pinned ? 'true' : 'false'}
        title=${conversation.pinned ? t('sidebar.unpinShort') : t('sidebar.pinShort')}
        onClick=${() => setPinned(conversation.id, !conversation.pinned)}
      >
        <${Icon} name="pin" />
      </button>
      <button
        type="button"
        class="icon-btn"
        aria-label=${t('sidebar.rename', { title })}
        title=${t('sidebar.renameShort')}
        onClick=${() => setEditing(true)}
      >
        <${Icon} name="pencil" />
      </button>
      <button
        type="button"
        class="icon-btn"
        aria-label=${t('sidebar.delete', { title })}
        title=${t('sidebar.deleteShort')}
        onClick=${() => remove(conversation.id)}
      >
        <${Icon} name="trash" />
      </button>
    </span>
  </li>`;
}

function Sentinel() {
  const ref = useRef(null);
  useEffect(() => {
    const target = ref.current;
    if (!target) return undefined;
    const observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((e) => e.isIntersecting)) loadMore();
      },
      { rootMargin: '200px' },
    );
    observer.observe(target);
    return () => observer.disconnect();
  }, []);
  return html`<div ref=${ref} class="sidebar-sentinel" aria-hidden="true"></div>`;
}

export function Sidebar() {
  useEffect(() => {
    reload();
  }, []);
  const searching = query.value.trim() !== '';
  const groups = groupConversations(visible.value);
  const drawer = !wide.value;
  const open = sidebarOpen.value;

  return html`${drawer &&
    html`<button
      type="button"
      class="sidebar-backdrop"
      data-drawer=${open ? 'open' : 'closed'}
      aria-label=${t('sidebar.hide')}
      tabindex="-1"
      onClick=${() => toggleSidebar(false)}
    ></button>`}
    <aside
      id="sidebar"
      class="sidebar"
      aria-label=${t('sidebar.label')}
      data-open=${open ? 'true' : 'false'}
      data-drawer=${drawer ? (open ? 'open' : 'closed') : undefined}
      onKeyDown=${(e) => {
        if (drawer && e.key === 'Escape') {
          toggleSidebar(false);
          document.querySelector('.sidebar-toggle')?.focus();
        } else if (drawer && open && e.key === 'Tab') {
          keepFocusIn(e.currentTarget, e);
        }
      }}
    >
      <div class="sidebar-top">
        <div class="row">
          <button type="button" class="btn sidebar-new" onClick=${newChat}>
            <${Icon} name="plus" /> ${t('sidebar.newChat')}
          </button>
          <button
            type="button"
            class="icon-btn"
            aria-label=${t('sidebar.hide')}
            onClick=${() => toggleSidebar(false)}
          >
            <${Icon} name=${drawer ? 'close' : 'sidebar'} />
          </button>
        </div>
        <div class="sidebar-search" role="search">
          <label for="sidebar-search" class="sr-only">${t('sidebar.search')}</label>
          <input
            id="sidebar-search"
            class="input"
            type="search"
            autocomplete="off"
            placeholder=${t('sidebar.searchPlaceholder')}
            value=${query.value}
            onInput=${(e) => search(e.currentTarget.value)}
            onKeyDown=${(e) => {
              if (e.key === 'Escape' && query.value) {
                e.stopPropagation();
                search('');
              }
            }}
          />
          <kbd aria-hidden="true">Ctrl K</kbd>
        </div>
      </div>
      <nav class="sidebar-list" aria-label=${t('sidebar.conversations')}>
        ${searching &&
        html`<p class="sr-only" role="status">
          ${loading.value ? t('sidebar.searching') : t('sidebar.results', { n: visible.value.length })}
        </p>`}
        ${groups.map(
          (group) => html`<div class="sidebar-group" key=${group.key} data-group=${group.key}>
            <h2 id=${`group-${group.key}`}>${group.label}</h2>
            <ul aria-labelledby=${`group-${group.key}`}>
              ${group.items.map((c) => html`<${Item} key=${c.id} conversation=${c} />`)}
            </ul>
          </div>`,
        )}
        ${!loading.value &&
        !failed.value &&
        visible.value.length === 0 &&
        html`<p class="sidebar-status">
          ${searching ? t('sidebar.noResults') : t('sidebar.empty')}
        </p>`}
        ${failed.value &&
        html`<p class="sidebar-status error-text" role="alert">
          ${failed.value}
          <button type="button" class="btn btn-ghost" onClick=${reload}>${t('common.retry')}</button>
        </p>`}
        ${loading.value && html`<p class="sidebar-status">${t('common.loading')}</p>`}
        ${hasMore.value && html`<${Sentinel} />`}
      </nav>
      <div class="sidebar-foot">
        <div class="sidebar-user">
          <a
            href="/account"
            onClick=${(e) => {
              e.preventDefault();
              navigate('/account');
              if (!wide.value) drawerOpen.value = false;
            }}
          >
            <span class="avatar" aria-hidden="true">${(me.value?.username || '?')[0].toUpperCase()}</span>
            ${me.value?.username || ''}
          </a>
        </div>
      </div>
    </aside>
    <${Toasts} />`;
}
