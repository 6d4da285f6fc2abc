// The chat: the open conversation's current path, the input, and the tree of its branches.
import { html } from 'htm/preact';
import { useState, useRef, useEffect, useLayoutEffect, useCallback } from 'preact/hooks';
import { t } from '../i18n/index.js';
import { conversationId, emit } from '../state.js';
import { Message, signature } from './message.js';
import { paintOnScreen } from './markdown-view.js';
import * as store from './store.js';

/** The tree view: a chunk of its own, loaded when the tree is first wanted (or pointed at). */
let TreeView = /** @type {typeof import('./tree.js').TreeView | null} */ (null);
const loadTree = () =>
  import('./tree.js').then((m) => {
    TreeView = m.TreeView;
  });

/** Unsent text per conversation, so switching away does not lose it. */
const drafts = new Map();

/** @param {{conv: store.Conv, v: number}} props */
function Composer({ conv }) {
  const key = conv.id ?? 'new';
  const [text, setText] = useState(drafts.get(key) || '');
  const area = useRef(/** @type {HTMLTextAreaElement | null} */ (null));
  useEffect(() => {
    setText(drafts.get(key) || '');
  }, [key]);
  const busy = conv.busy();
  const running = [...conv.messages.values()].find((m) => m.stream && m.stream.running);
  const send = () => {
    const value = text.trim();
    if (!value || busy) return;
    setText('');
    drafts.delete(key);
    store.ask(conv, value).catch(() => {
      // refused (quota, bad request): the question comes back to be sent again
      setText(value);
      drafts.set(conv.id ?? 'new', value);
    });
  };
  return html`<form class="composer" onSubmit=${(/** @type {Event} */ e) => {
    e.preventDefault();
    send();
  }}>
    <label class="sr-only" for="chat-input">${t('chat.input.label')}</label>
    <textarea id="chat-input" ref=${area} rows="1" value=${text}
      placeholder=${t('chat.input.placeholder')} aria-describedby="chat-input-hint"
      onInput=${(/** @type {any} */ e) => {
        setText(e.currentTarget.value);
        drafts.set(key, e.currentTarget.value);
      }}
      onKeyDown=${(/** @type {KeyboardEvent} */ e) => {
        if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
          e.preventDefault();
          send();
        }
      }}></textarea>
    <span id="chat-input-hint" class="sr-only">${t('chat.input.hint')}</span>
    ${running
      ? html`<button type="button" class="btn btn-stop" onClick=${() => store.stop(conv, running.id)}>${t('chat.stop')}</button>`
      : html`<button type="submit" class="btn btn-primary btn-send" disabled=${!text.trim()}>${t('chat.send')}</button>`}
  </form>`;
}

/** Messages drawn when a conversation opens: its end, what is on screen and a little more. */
const FIRST = Math.max(12, Math.ceil(innerHeight / 60));
/** Messages added above the ones drawn, each time the page is idle, until all are. */
const MORE = 24;
/** Messages at the end whose Markdown is rendered at once, with those on screen (the others
 * when they come near it). */
const EAGER = 4;

const whenIdle =
  typeof requestIdleCallback === 'function'
    ? (/** @type {() => void} */ fn) => requestIdleCallback(fn, { timeout: 500 })
    : (/** @type {() => void} */ fn) => setTimeout(fn, 50);
const cancelIdle =
  typeof cancelIdleCallback === 'function'
    ? (/** @type {number} */ h) => cancelIdleCallback(h)
    : (/** @type {number} */ h) => clearTimeout(h);

export function Chat() {
  const id = conversationId.value;
  const conv = store.convFor(id);
  const v = conv.version.value; // re-render when the conversation changes
  const list = useRef(/** @type {HTMLDivElement | null} */ (null));
  const stick = useRef(true);
  const [tree, setTree] = useState(false);
  const [readyFor, setReadyFor] = useState(/** @type {string | null | undefined} */ (undefined));
  const ready = readyFor === id;
  // The first message drawn, by its place in the path: a long conversation opens with its end
  // drawn, and the rest is added above a slice at a time when the page is idle. Kept as a
  // place from the start, so switching a branch below it keeps what is drawn above.
  const [win, setWin] = useState({ id, from: Infinity });
  const path = conv.path();
  const start = Math.min(win.id === id ? win.from : Infinity, Math.max(0, path.length - FIRST));

  const onGrow = useCallback(() => {
    const el = list.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, []);

  useEffect(() => {
    if (id) emit('conversation-opened', { id });
    stick.current = true;
  }, [id]);

  // Once the conversation is in the page: to its end, then mark it ready.
  useLayoutEffect(() => {
    if (!conv.loaded || ready) return;
    const el = list.current;
    if (el) {
      el.scrollTop = el.scrollHeight;
      // what is on screen is rendered before the conversation counts as open (rendering can
      // change heights, so twice more at most)
      for (let i = 0; i < 3 && paintOnScreen(el); i++) el.scrollTop = el.scrollHeight;
    }
    setReadyFor(id);
  }, [conv.loaded, v, ready, id]);

  // Then the messages above, when the page has nothing else to do.
  useEffect(() => {
    if (!ready || start === 0) return;
    const handle = whenIdle(() => setWin({ id, from: Math.max(0, start - MORE) }));
    return () => cancelIdle(handle);
  }, [ready, start, id]);

  /** Show the branch through `mid` (from the tree), drawing the path down to it. @param {string} mid */
  const showBranch = (mid) => {
    store.showBranch(conv, mid);
    const at = conv.path().indexOf(mid);
    if (at >= 0 && at < start) setWin({ id, from: at });
  };

  const eagerFrom = Math.max(0, path.length - EAGER);
  const hasBranches = [...conv.kids.values()].some((k) => k.length > 1);
  const shown = start > 0 ? path.slice(start) : path;

  return html`<section class="chat" aria-label=${t('chat.label')}>
    ${path.length > 0 && html`<h1 class="sr-only">${conv.title || t('chat.label')}</h1>`}
    ${conv.id && conv.messages.size > 0 && html`<div class="chat-tools">
      <button type="button" class=${`btn btn-tree${hasBranches ? ' has-branches' : ''}`}
        onPointerEnter=${() => loadTree().catch(() => {})}
        onClick=${() => loadTree().then(() => setTree(true), () => {})}>${t('chat.tree.open')}</button>
    </div>`}
    <div class="messages" ref=${list} role="log" aria-live="polite" aria-busy=${!conv.loaded || conv.busy()}
      data-ready=${conv.loaded && ready ? '1' : null} data-from=${start} tabindex="0"
      onScroll=${(/** @type {any} */ e) => {
        const el = e.currentTarget;
        stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
      }}>
      <div class="messages-inner">
        ${conv.loadError && html`<p class="status status-error" role="alert">${conv.loadError}</p>`}
        ${conv.loaded && path.length === 0 && !conv.loadError &&
          html`<div class="empty"><h1>${t('chat.empty.title')}</h1><p>${t('chat.empty.hint')}</p></div>`}
        ${shown.map((mid, i) => {
          const msg = /** @type {store.Msg} */ (conv.messages.get(mid));
          return html`<${Message} key=${mid} conv=${conv} msg=${msg} eager=${start + i >= eagerFrom}
            onGrow=${onGrow} sig=${signature(conv, msg)} />`;
        })}
      </div>
    </div>
    ${conv.notice && html`<div class="notice" role="alert">
      <span>${conv.notice}</span>
      <button type="button" class="icon-btn" aria-label=${t('chat.dismiss')} onClick=${() => {
        conv.notice = null;
        conv.bump();
      }}>×</button>
    </div>`}
    <${Composer} conv=${conv} v=${v} />
    ${tree && TreeView && html`<${TreeView} conv=${conv} v=${v} onShow=${showBranch} onClose=${() => setTree(false)} />`}
  </section>`;
}
