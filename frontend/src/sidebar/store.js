/**
 * The sidebar's list: pages of conversations fetched by cursor, a search, and the changes made
 * from the sidebar (rename, pin, delete with undo). Other parts of the page announce changes
 * on `bus` ("conversations-changed"), and the first page is fetched again.
 */
import { signal, computed } from '@preact/signals';
import { bus, conversationId, navigate } from '../state.js';
import {
  listConversations,
  changeConversation,
  deleteConversation,
  pinConversation,
} from '../api/conversations.js';
import { t } from '../i18n/index.js';
import { toast } from '../theme/toast.js';

const PAGE = 30;
const UNDO_MS = 6000;

/** @typedef {{id: string, title: string|null, updated_at: number, created_at: number, pinned?: boolean, model?: string|null}} Conversation */

/** @type {import('@preact/signals').Signal<Conversation[]>} */
export const items = signal([]);
export const cursor = signal(/** @type {string|null} */ (null));
export const query = signal('');
export const loading = signal(false);
export const failed = signal(/** @type {string|null} */ (null));
/** Ids deleted but still undoable: hidden from the list, deleted for real when the toast ends. */
const pendingDeletes = signal(/** @type {Set<string>} */ (new Set()));
export const visible = computed(() => items.value.filter((c) => !pendingDeletes.value.has(c.id)));
export const hasMore = computed(() => cursor.value !== null);

let generation = 0;

/** Fetch the first page again (for the current search). */
export async function reload() {
  const mine = ++generation;
  loading.value = true;
  failed.value = null;
  try {
    const page = await listConversations({ limit: PAGE, q: query.value.trim() });
    if (mine !== generation) return;
    items.value = page.data;
    cursor.value = page.next_cursor;
  } catch (error) {
    if (mine === generation) failed.value = error.message || String(error);
  } finally {
    if (mine === generation) loading.value = false;
  }
}

/** Fetch the next page, when there is one and none is on its way. */
export async function loadMore() {
  if (loading.value || !cursor.value) return;
  const mine = generation;
  loading.value = true;
  try {
    const page = await listConversations({
      limit: PAGE,
      cursor: cursor.value,
      q: query.value.trim(),
    });
    if (mine !== generation) return;
    const seen = new Set(items.value.map((c) => c.id));
    items.value = [...items.value, ...page.data.filter((c) => !seen.has(c.id))];
    cursor.value = page.next_cursor;
  } catch (error) {
    if (mine === generation) failed.value = error.message || String(error);
  } finally {
    if (mine === generation) loading.value = false;
  }
}

let searchTimer = 0;
/** Search as the user types, a moment after they pause. @param {string} text */
export function search(text) {
  query.value = text;
  clearTimeout(searchTimer);
  searchTimer = setTimeout(reload, 250);
}

function replace(updated) {
  items.value = items.value.map((c) => (c.id === updated.id ? { ...c, ...updated } : c));
}

/** @param {string} id @param {string} title */
export async function rename(id, title) {
  const clean = title.trim();
  if (!clean) return;
  const before = items.value.find((c) => c.id === id);
  if (before) replace({ ...before, title: clean });
  try {
    replace(await changeConversation(id, { title: clean }));
    bus.dispatchEvent(new CustomEvent('conversation-renamed', { detail: { id, title: clean } }));
  } catch (error) {
    if (before) replace(before);
    toast(t('sidebar.failed', { message: error.message }));
  }
}

/** @param {string} id @param {boolean} pinned */
export async function setPinned(id, pinned) {
  const before = items.value.find((c) => c.id === id);
  if (before) replace({ ...before, pinned });
  try {
    replace(await pinConversation(id, pinned));
  } catch (error) {
    if (before) replace(before);
    toast(t('sidebar.failed', { message: error.message }));
  }
}

/** Timers of deletes that wait for their undo window to pass. */
const waiting = new Map();

async function deleteNow(id) {
  waiting.delete(id);
  try {
    await deleteConversation(id);
    items.value = items.value.filter((c) => c.id !== id);
  } catch (error) {
    toast(t('sidebar.failed', { message: error.message }));
  } finally {
    const next = new Set(pendingDeletes.value);
    next.delete(id);
    pendingDeletes.value = next;
  }
}

/** Hide a conversation at once and delete it unless "Undo" is pressed in time. @param {string} id */
export function remove(id) {
  const conversation = items.value.find((c) => c.id === id);
  pendingDeletes.value = new Set([...pendingDeletes.value, id]);
  if (conversationId.value === id) navigate('/');
  const title = conversation?.title || t('sidebar.untitled');
  const dismiss = toast(t('sidebar.deleted', { title }), {
    ms: UNDO_MS,
    action: {
      label: t('sidebar.undo'),
      run: () => {
        clearTimeout(waiting.get(id));
        waiting.delete(id);
        const next = new Set(pendingDeletes.value);
        next.delete(id);
        pendingDeletes.value = next;
      },
    },
  });
  waiting.set(
    id,
    setTimeout(() => {
      dismiss();
      deleteNow(id);
    }, UNDO_MS),
  );
}

/** Deletes still waiting are sent as the page goes away, so closing the tab does not undo them. */
addEventListener('pagehide', () => {
  for (const [id, timer] of waiting) {
    clearTimeout(timer);
    fetch(`/api/v1/conversations/${encodeURIComponent(id)}`, {
      method: 'DELETE',
      credentials: 'same-origin',
      keepalive: true,
    });
  }
  waiting.clear();
});

bus.addEventListener('conversations-changed', () => {
  if (!query.value.trim()) reload();
});
