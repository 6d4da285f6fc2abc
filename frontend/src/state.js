// The page's shared state: a few signals every part reads, the route, and a bus for events
// that parts raise for each other (a new conversation, spent quota, an opened conversation).
import { signal } from '@preact/signals';

/** @typedef {{id?: string, username: string, role: string}} Me */

/** The logged-in user, `null` when logged out, `undefined` while not known yet. */
export const me = signal(/** @type {Me | null | undefined} */ (undefined));
/** The open conversation's id, `null` on a new chat. */
export const conversationId = signal(/** @type {string | null} */ (conversationOf(location.pathname)));
/** The models the user may use: `[{id, ...}]`. */
export const models = signal(/** @type {Array<{id: string}>} */ ([]));
/** Today's usage as the account routes give it. */
export const usage = signal(/** @type {Record<string, unknown> | null} */ (null));
/** The current path of the page (`/`, `/c/{id}`, `/login`, `/account`). */
export const route = signal(location.pathname);

/**
 * Events: `conversations-changed`, `usage-changed`, `conversation-opened` (detail: {id}),
 * `conversation-loaded` (detail: the conversation as `GET /api/v1/conversations/{id}` gives it).
 */
export const bus = new EventTarget();

/** @param {string} name @param {unknown} [detail] */
export function emit(name, detail) {
  bus.dispatchEvent(new CustomEvent(name, { detail }));
}

/**
 * Go to a page path without reloading.
 * @param {string} path
 * @param {{replace?: boolean}} [opts]
 */
export function navigate(path, opts = {}) {
  if (path !== location.pathname) {
    if (opts.replace) history.replaceState(null, '', path);
    else history.pushState(null, '', path);
  }
  route.value = path;
}

addEventListener('popstate', () => {
  route.value = location.pathname;
});

/** The conversation id a path names, or null. @param {string} path */
export function conversationOf(path) {
  const m = /^\/c\/([^/]+)/.exec(path);
  return m ? decodeURIComponent(m[1]) : null;
}
