// The chat: the open conversation's current path, the input, and the tree of its branches.
import { html } from 'htm/preact';
import { useState, useRef, useEffect, useLayoutEffect, useCallback } from 'preact/hooks';
import { t } from '../i18n/index.js';
import { conversationId, emit } from '../state.js';
import { Message } from './message.js';
import { TreeView } from './tree.js';
import * as store from './store.js';

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

export function Chat() {
  const id = conversationId.value;
  const conv = store.convFor(id);
  const v = conv.version.value; // re-render when the conversation changes
  const list = useRef(/** @type {HTMLDivElement | null} */ (null));
  const stick = useRef(true);
  const [tree, setTree] = useState(false);
  const [readyFor, setReadyFor] = useState(/** @type {string | null | undefined} */ (undefined));
  const ready = readyFor === id;

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
    if (el) el.scrollTop = el.scrollHeight;
    setReadyFor(id);
  }, [conv.loaded, v, ready, id]);

  const path = conv.path();
  const eagerFrom = Math.max(0, path.length - 8);
  const hasBranches = [...conv.kids.values()].some((k) => k.length > 1);

  return html`<section class="chat" aria-label=${t('chat.label')}>
    ${conv.id && conv.messages.size > 0 && html`<div class="chat-tools">
      <button type="button" class=${`btn btn-tree${hasBranches ? ' has-branches' : ''}`}
        onClick=${() => setTree(true)}>${t('chat.tree.open')}</button>
    </div>`}
    <div class="messages" ref=${list} role="log" aria-live="polite" aria-busy=${!conv.loaded || conv.busy()}
      data-ready=${conv.loaded && ready ? '1' : null} tabindex="0"
      onScroll=${(/** @type {any} */ e) => {
        const el = e.currentTarget;
        stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
      }}>
      <div class="messages-inner">
        ${conv.loadError && html`<p class="status status-error" role="alert">${conv.loadError}</p>`}
        ${conv.loaded && path.length === 0 && !conv.loadError &&
          html`<div class="empty"><h1>${t('chat.empty.title')}</h1><p>${t('chat.empty.hint')}</p></div>`}
        ${path.map((mid, i) => {
          const msg = /** @type {store.Msg} */ (conv.messages.get(mid));
          return html`<${Message} key=${mid} conv=${conv} msg=${msg} eager=${i >= eagerFrom} onGrow=${onGrow} v=${v} />`;
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
    ${tree && html`<${TreeView} conv=${conv} v=${v} onClose=${() => setTree(false)} />`}
  </section>`;
}
