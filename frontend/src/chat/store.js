// The conversations the page has open, as trees of messages, and the replies streaming into
// them. It lives outside the components so a reply goes on streaming while another
// conversation is shown, and shows where it is when its conversation is opened again.
import { signal } from '@preact/signals';
import * as api from '../api/chat.js';
import { ApiError } from '../api/core.js';
import { warm } from '../markdown/md.js';
import { askParams } from '../settings/panel.js';
import { emit, navigate, conversationId } from '../state.js';

/**
 * @typedef {{
 *   replyId: string | null, lastId: number, text: string, base: number, running: boolean,
 *   abort: AbortController, listeners: Set<(text: string) => void>, onEnd: Set<() => void>,
 * }} Stream
 * @typedef {{
 *   id: string, parent_id: string | null, role: string, content: string,
 *   finish_reason: string | null, model: string | null, created_at: number,
 *   error?: string | null, stream?: Stream | null, pending?: boolean,
 * }} Msg
 */

export class Conv {
  /** @param {string | null} id */
  constructor(id) {
    this.id = id;
    /** @type {Map<string, Msg>} */
    this.messages = new Map();
    /** @type {Map<string, string[]>} children by parent id ('' for the roots) */
    this.kids = new Map();
    /** @type {Map<string, string>} the child last shown under a parent */
    this.chosen = new Map();
    /** @type {string | null} */
    this.leaf = null;
    this.title = /** @type {string | null} */ (null);
    this.loaded = id === null;
    this.loadError = /** @type {string | null} */ (null);
    /** Errors that belong to no message (a refused question). */
    this.notice = /** @type {string | null} */ (null);
    this.version = signal(0);
    /** Whether a reply is streaming here, for the buttons that wait for it (bound to them, so
     * that a reply starting or ending does not render every message again). */
    this.running = signal(false);
  }

  bump() {
    this.version.value += 1;
    this.running.value = this.busy();
  }

  /** @param {string | null} parent */
  children(parent) {
    return this.kids.get(parent ?? '') || [];
  }

  /** @param {Msg} m */
  add(m) {
    this.messages.set(m.id, m);
    const key = m.parent_id ?? '';
    const list = this.kids.get(key) || [];
    if (!list.includes(m.id)) list.push(m.id);
    this.kids.set(key, list);
    this.chosen.set(key, m.id);
  }

  /** @param {string} id */
  remove(id) {
    const m = this.messages.get(id);
    if (!m) return;
    this.messages.delete(id);
    const key = m.parent_id ?? '';
    const list = (this.kids.get(key) || []).filter((k) => k !== id);
    this.kids.set(key, list);
    if (this.chosen.get(key) === id) {
      if (list.length) this.chosen.set(key, list[list.length - 1]);
      else this.chosen.delete(key);
    }
    if (this.leaf === id) this.leaf = m.parent_id;
  }

  /** Give a message its stored id. @param {string} from @param {string} to */
  rename(from, to) {
    if (from === to) return;
    const m = this.messages.get(from);
    if (!m) return;
    this.messages.delete(from);
    m.id = to;
    this.messages.set(to, m);
    const key = m.parent_id ?? '';
    this.kids.set(key, (this.kids.get(key) || []).map((k) => (k === from ? to : k)));
    if (this.chosen.get(key) === from) this.chosen.set(key, to);
    const own = this.kids.get(from);
    if (own) {
      this.kids.delete(from);
      this.kids.set(to, own);
      for (const k of own) {
        const child = this.messages.get(k);
        if (child) child.parent_id = to;
      }
    }
    if (this.chosen.has(from)) {
      this.chosen.set(to, /** @type {string} */ (this.chosen.get(from)));
      this.chosen.delete(from);
    }
    if (this.leaf === from) this.leaf = to;
  }

  /** Message ids from the root to the leaf. */
  path() {
    const out = [];
    let id = this.leaf;
    const seen = new Set();
    while (id && !seen.has(id)) {
      seen.add(id);
      const m = this.messages.get(id);
      if (!m) break;
      out.push(id);
      id = m.parent_id;
    }
    return out.reverse();
  }

  /** The leaf reached from `id` going down the branches last shown. @param {string} id */
  descend(id) {
    let cur = id;
    for (;;) {
      const list = this.kids.get(cur);
      if (!list || !list.length) return cur;
      const pick = this.chosen.get(cur);
      cur = pick && list.includes(pick) ? pick : list[list.length - 1];
    }
  }

  /** Whether a reply is streaming in this conversation. */
  busy() {
    for (const m of this.messages.values()) if (m.stream && m.stream.running) return true;
    return false;
  }
}

/** @type {Map<string, Conv>} */
const convs = new Map();
/** The new chat being written (no id until its first reply starts). */
let draft = new Conv(null);
let counter = 0;

/** The conversation shown for an id (null: the new chat). @param {string | null} id */
export function convFor(id) {
  if (id === null) return draft;
  let c = convs.get(id);
  if (!c) {
    c = new Conv(id);
    convs.set(id, c);
    load(c);
  }
  return c;
}

/** Forget a conversation (deleted elsewhere, or to reload it). @param {string} id */
export function forget(id) {
  const c = convs.get(id);
  if (c && !c.busy()) convs.delete(id);
}

/** @param {Conv} c */
async function load(c) {
  try {
    const asked = api.getConversation(/** @type {string} */ (c.id));
    setTimeout(warm, 0); // while the conversation is on its way
    const body = await asked;
    emit('conversation-loaded', body); // its settings, without a second fetch of the whole tree
    c.title = body.title;
    const messages = [...body.messages].sort(
      (/** @type {Msg} */ a, /** @type {Msg} */ b) => a.created_at - b.created_at,
    );
    for (const m of messages) if (!c.messages.has(m.id)) c.add({ ...m });
    const path = body.current_path || [];
    for (let i = 1; i < path.length; i++) c.chosen.set(path[i - 1], path[i]);
    if (path.length) c.chosen.set('', path[0]);
    c.leaf = body.current_leaf_id || path[path.length - 1] || null;
    c.loaded = true;
    c.bump();
    await resume(c);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      convs.delete(/** @type {string} */ (c.id)); // asked before logging in: ask again after
      return;
    }
    c.loadError = e instanceof Error ? e.message : String(e);
    c.loaded = true;
    c.bump();
  }
}

/** Reattach to the conversation's replies that are still running (after a reload). @param {Conv} c */
async function resume(c) {
  let listing;
  try {
    listing = await api.runningReplies(/** @type {string} */ (c.id));
  } catch {
    return;
  }
  for (const r of (listing && listing.data) || []) {
    if (r.message_id && c.messages.has(r.message_id)) continue; // already stored whole
    if (r.status !== 'running' && !r.message_id) continue;
    if (!c.messages.has(r.parent_id)) continue;
    const id = r.message_id || `tmp-a-${++counter}`;
    const stream = newStream();
    stream.replyId = r.reply_id;
    c.add(reply(id, r.parent_id, stream, r.model));
    if (c.leaf === r.parent_id || !c.leaf) c.leaf = id;
    c.bump();
    follow(c, id, stream, (on, opts) => api.attach(r.reply_id, 0, on, opts));
  }
}

/** @returns {Stream} */
function newStream() {
  return {
    replyId: null,
    lastId: 0,
    text: '',
    base: 0, // the length of the text that was there before (a continued reply's old text)
    running: true,
    abort: new AbortController(),
    listeners: new Set(),
    onEnd: new Set(),
  };
}

/** @param {string} id @param {string | null} parent @param {Stream} stream @param {string | null} [model] @returns {Msg} */
function reply(id, parent, stream, model = null) {
  return {
    id,
    parent_id: parent,
    role: 'assistant',
    content: '',
    finish_reason: null,
    model,
    created_at: Date.now() / 1000,
    stream,
  };
}

/**
 * Run a streamed request into the reply `replyId` of `c`, reattaching when the connection drops.
 * @param {Conv} c
 * @param {string} replyKey the reply's id in `c` (temporary until the `reply` event)
 * @param {Stream} stream
 * @param {(on: api.OnEvent, opts: api.Opts) => Promise<void>} start
 * @param {{question?: string}} [tmp] the question's temporary id, if the request writes one
 */
async function follow(c, replyKey, stream, start, tmp = {}) {
  let key = replyKey;
  let ended = false;
  /** @type {api.OnEvent} */
  const on = (name, data, eventId) => {
    if (eventId !== null) {
      const n = Number(eventId);
      if (n <= stream.lastId) return; // already have it
      stream.lastId = n;
    }
    if (name === 'reply') {
      stream.replyId = data.reply_id;
      if (c.id === null) adopt(c, data.conversation_id);
      if (tmp.question && data.parent_id) c.rename(tmp.question, data.parent_id);
      if (data.message_id) {
        c.rename(key, data.message_id);
        key = data.message_id;
      }
      const m = c.messages.get(key);
      if (m && data.model) m.model = data.model;
      c.bump();
    } else if (name === 'delta') {
      const text = data && typeof data.text === 'string' ? data.text : '';
      stream.text += text;
      for (const fn of stream.listeners) fn(text);
    } else if (name === 'done' || name === 'json') {
      ended = true;
      end(c, key, stream, data.finish_reason || 'stop', null, data.message_id);
    } else if (name === 'error') {
      ended = true;
      const message = (data && data.error && data.error.message) || String(data);
      end(c, key, stream, 'error', message, undefined);
    }
  };
  let tries = 0;
  let attempt = start;
  while (!ended) {
    try {
      await attempt(on, { signal: stream.abort.signal });
      if (ended) break;
      // The stream closed without an end: the connection dropped; pick the reply up again.
    } catch (e) {
      if (stream.abort.signal.aborted) return;
      if (e instanceof ApiError) {
        if (!stream.replyId) throw e; // refused before the reply began
        if (e.status === 404) {
          ended = true;
          await settleFromStore(c, key, stream);
          break;
        }
      }
    }
    if (!stream.replyId || ++tries > 5) {
      end(c, key, stream, 'error', 'The connection was lost.', undefined);
      break;
    }
    await new Promise((r) => setTimeout(r, 500 * tries));
    const replyId = stream.replyId;
    attempt = (o, opts) => api.attach(replyId, stream.lastId, o, opts);
  }
}

/** The reply ended while nobody followed it: take what was stored. @param {Conv} c @param {string} key @param {Stream} stream */
async function settleFromStore(c, key, stream) {
  try {
    const body = await api.getConversation(/** @type {string} */ (c.id));
    const stored = body.messages.find((/** @type {Msg} */ m) => m.id === key);
    if (stored) {
      stream.text = stored.content;
      end(c, key, stream, stored.finish_reason, null, key);
      return;
    }
  } catch {
    /* fall through */
  }
  end(c, key, stream, 'error', 'The reply could not be found.', undefined);
}

/**
 * @param {Conv} c @param {string} key @param {Stream} stream
 * @param {string} finish @param {string | null} error @param {string | null | undefined} storedId
 */
function end(c, key, stream, finish, error, storedId) {
  stream.running = false;
  const m = c.messages.get(key);
  if (m) {
    m.content = stream.text;
    m.finish_reason = finish;
    m.error = error;
    // stopped before anything came
    if (storedId === null && stream.text.length === stream.base) c.remove(key);
  }
  for (const fn of stream.onEnd) fn();
  c.bump();
  emit('usage-changed');
  emit('conversations-changed', { id: c.id });
}

/** The new chat got its id: it becomes a conversation like the others. @param {Conv} c @param {string} id */
function adopt(c, id) {
  c.id = id;
  convs.set(id, c);
  draft = new Conv(null);
  if (conversationId.value === null) navigate(`/c/${encodeURIComponent(id)}`, { replace: true });
  emit('conversations-changed', { id });
}

/** @param {Conv} c */
function params(c) {
  return askParams(c.id ?? 'new') || {};
}

/**
 * Ask `content` after the current leaf (or after `parent`).
 * @param {Conv} c @param {string} content @param {string | null} [parent]
 */
export async function ask(c, content, parent = c.leaf) {
  const qid = `tmp-q-${++counter}`;
  const aid = `tmp-a-${counter}`;
  const stream = newStream();
  c.notice = null;
  c.add({ id: qid, parent_id: parent, role: 'user', content, finish_reason: null, model: null, created_at: Date.now() / 1000, pending: true });
  c.add(reply(aid, qid, stream));
  c.leaf = aid;
  c.bump();
  const body = { ...params(c), content, parent_id: parent && !parent.startsWith('tmp-') ? parent : undefined };
  try {
    await follow(c, aid, stream, (on, opts) => api.sendMessage(c.id, body, on, opts), { question: qid });
  } catch (e) {
    // Refused before the reply began: nothing was stored; the question goes back to the input.
    c.remove(aid);
    c.remove(qid);
    c.notice = e instanceof Error ? e.message : String(e);
    c.bump();
    throw e;
  }
}

/** Another reply to the question `questionId`. @param {Conv} c @param {string} questionId */
export async function regenerate(c, questionId) {
  const aid = `tmp-a-${++counter}`;
  const stream = newStream();
  c.notice = null;
  c.add(reply(aid, questionId, stream));
  c.leaf = aid;
  c.bump();
  const p = params(c);
  try {
    await follow(c, aid, stream, (on, opts) =>
      api.regenerate(/** @type {string} */ (c.id), questionId, p, on, opts),
    );
  } catch (e) {
    c.remove(aid);
    c.notice = e instanceof Error ? e.message : String(e);
    c.bump();
  }
}

/**
 * Go on with the reply `id`, cut at the token limit, in the same place: the continued reply
 * (stored as a new version of it, old text and new) starts with the cut text and grows, and no
 * question is asked. @param {Conv} c @param {string} id
 */
export async function continueReply(c, id) {
  const cut = c.messages.get(id);
  if (!cut || !c.id) return;
  const aid = `tmp-a-${++counter}`;
  const stream = newStream();
  stream.text = cut.content;
  stream.base = cut.content.length;
  c.notice = null;
  c.add(reply(aid, cut.parent_id, stream, cut.model));
  c.leaf = aid;
  c.bump();
  const p = params(c);
  try {
    await follow(c, aid, stream, (on, opts) =>
      api.continueReply(/** @type {string} */ (c.id), id, p, on, opts),
    );
  } catch (e) {
    c.remove(aid);
    c.notice = e instanceof Error ? e.message : String(e);
  }
  // Refused, or stopped before anything came: nothing was kept, so the cut reply shows again.
  const kept = [...c.messages.values()].some((m) => m.stream === stream);
  if (!kept && c.messages.has(id)) showBranch(c, id);
  else c.bump();
}

/** A changed question beside `questionId`, and its reply. @param {Conv} c @param {string} questionId @param {string} content */
export async function editQuestion(c, questionId, content) {
  const old = c.messages.get(questionId);
  if (!old) return;
  const qid = `tmp-q-${++counter}`;
  const aid = `tmp-a-${counter}`;
  const stream = newStream();
  c.notice = null;
  c.add({ id: qid, parent_id: old.parent_id, role: 'user', content, finish_reason: null, model: null, created_at: Date.now() / 1000, pending: true });
  c.add(reply(aid, qid, stream));
  c.leaf = aid;
  c.bump();
  const p = params(c);
  try {
    await follow(
      c, aid, stream,
      (on, opts) => api.edit(/** @type {string} */ (c.id), questionId, content, p, on, opts),
      { question: qid },
    );
  } catch (e) {
    c.remove(aid);
    c.remove(qid);
    c.notice = e instanceof Error ? e.message : String(e);
    c.bump();
  }
}

/** Stop the reply streaming into message `id`, keeping what arrived. @param {Conv} c @param {string} id */
export async function stop(c, id) {
  const m = c.messages.get(id);
  const stream = m && m.stream;
  if (!stream || !stream.running) return;
  if (stream.replyId) {
    try {
      await api.cancelReply(stream.replyId);
      return; // the stream ends with its `done` (finish_reason `cancelled`)
    } catch {
      /* stop following at least */
    }
  }
  stream.abort.abort();
  end(c, id, stream, 'cancelled', null, undefined);
}

/** Show the branch through `id` (a message or any node of the tree). @param {Conv} c @param {string} id */
export function showBranch(c, id) {
  let cur = c.messages.get(id);
  while (cur) {
    c.chosen.set(cur.parent_id ?? '', cur.id);
    cur = cur.parent_id ? c.messages.get(cur.parent_id) : undefined;
  }
  c.leaf = c.descend(id);
  c.bump();
  if (c.id && c.leaf && !c.leaf.startsWith('tmp-')) {
    api.setLeaf(c.id, c.leaf).catch(() => {});
  }
}

/** Move to the sibling `step` away from `id`. @param {Conv} c @param {string} id @param {number} step */
export function switchSibling(c, id, step) {
  const m = c.messages.get(id);
  if (!m) return;
  const list = c.children(m.parent_id);
  const i = list.indexOf(id) + step;
  if (i < 0 || i >= list.length) return;
  showBranch(c, list[i]);
}
