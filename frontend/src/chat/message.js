// One message of the path shown: its text, its place among its siblings (`‹ 2 / 3 ›`), and what
// can be done with it (edit a question, regenerate, continue or retry a reply, copy).
import { html } from 'htm/preact';
import { Component } from 'preact';
import { useState, useRef, useEffect } from 'preact/hooks';
import { t, locale } from '../i18n/index.js';
import { Markdown, StreamingMarkdown } from './markdown-view.js';
import * as store from './store.js';

/** @param {{conv: store.Conv, msg: store.Msg, sig: string}} props */
function Siblings({ conv, msg }) {
  const list = conv.children(msg.parent_id);
  if (list.length < 2) return null;
  const i = list.indexOf(msg.id);
  return html`<div class="siblings" role="group" aria-label=${t('chat.siblings.label')}>
    <button type="button" class="icon-btn sib-prev" disabled=${i <= 0}
      aria-label=${t('chat.siblings.prev')} onClick=${() => store.switchSibling(conv, msg.id, -1)}>‹</button>
    <span class="sib-pos" aria-live="polite">${i + 1} / ${list.length}</span>
    <button type="button" class="icon-btn sib-next" disabled=${i >= list.length - 1}
      aria-label=${t('chat.siblings.next')} onClick=${() => store.switchSibling(conv, msg.id, 1)}>›</button>
  </div>`;
}

/** @param {{text: string}} props */
function CopyButton({ text }) {
  const [done, setDone] = useState(false);
  return html`<button type="button" class="act act-copy" onClick=${async () => {
    try {
      await navigator.clipboard.writeText(text);
      setDone(true);
      setTimeout(() => setDone(false), 1500);
    } catch {
      /* no clipboard */
    }
  }}>${done ? t('chat.copied') : t('chat.copy')}</button>`;
}

/** @param {{conv: store.Conv, msg: store.Msg, sig: string}} props */
function Question({ conv, msg, sig }) {
  const [editing, setEditing] = useState(false);
  const [text, setText] = useState(msg.content);
  const area = useRef(/** @type {HTMLTextAreaElement | null} */ (null));
  useEffect(() => {
    if (editing && area.current) area.current.focus();
  }, [editing]);
  const temp = msg.id.startsWith('tmp-');
  const submit = () => {
    const value = text.trim();
    if (!value) return;
    setEditing(false);
    store.editQuestion(conv, msg.id, value);
  };
  if (editing) {
    return html`<form class="edit-form" onSubmit=${(/** @type {Event} */ e) => {
      e.preventDefault();
      submit();
    }}>
      <label class="sr-only" for=${`edit-${msg.id}`}>${t('chat.edit.label')}</label>
      <textarea id=${`edit-${msg.id}`} ref=${area} class="edit-input" value=${text} rows="3"
        onInput=${(/** @type {any} */ e) => setText(e.currentTarget.value)}
        onKeyDown=${(/** @type {KeyboardEvent} */ e) => {
          if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            submit();
          } else if (e.key === 'Escape') {
            setEditing(false);
          }
        }}></textarea>
      <div class="edit-actions">
        <button type="submit" class="btn btn-primary edit-send">${t('chat.edit.send')}</button>
        <button type="button" class="btn" onClick=${() => setEditing(false)}>${t('chat.cancel')}</button>
      </div>
    </form>`;
  }
  return html`
    <div class="bubble user-text">${msg.content}</div>
    <div class="msg-actions">
      <${Siblings} conv=${conv} msg=${msg} sig=${sig} />
      <button type="button" class="act act-edit" disabled=${temp || conv.running} onClick=${() => {
        setText(msg.content);
        setEditing(true);
      }}>${t('chat.edit')}</button>
      <${CopyButton} text=${msg.content} />
    </div>`;
}

/** @param {{conv: store.Conv, msg: store.Msg, eager: boolean, onGrow: () => void, sig: string}} props */
function Reply({ conv, msg, eager, onGrow, sig }) {
  const stream = msg.stream;
  const running = !!(stream && stream.running);
  const temp = msg.id.startsWith('tmp-');
  const question = msg.parent_id;
  let status = null;
  if (msg.error) {
    status = html`<div class="status status-error" role="alert">
      <span>${t('chat.error', { message: msg.error })}</span>
      <button type="button" class="btn act-retry" disabled=${!question || conv.running}
        onClick=${() => question && store.regenerate(conv, question)}>${t('chat.retry')}</button>
    </div>`;
  } else if (msg.finish_reason === 'length') {
    status = html`<div class="status status-warn">
      <span>${t('chat.length')}</span>
      <button type="button" class="btn act-continue" disabled=${conv.running}
        onClick=${() => store.continueReply(conv, msg.id)}>${t('chat.continue')}</button>
    </div>`;
  } else if (msg.finish_reason === 'content_filter') {
    status = html`<div class="status status-warn" role="status">${t('chat.filtered')}</div>`;
  } else if (msg.finish_reason === 'cancelled') {
    status = html`<div class="status status-muted">${t('chat.stopped')}</div>`;
  }
  return html`
    <div class="bubble reply-body">
      ${stream
        ? html`<${StreamingMarkdown} stream=${stream} onGrow=${onGrow} />`
        : html`<${Markdown} source=${msg.content} eager=${eager} />`}
      ${running && !stream?.text && html`<span class="typing" aria-label=${t('chat.thinking')}></span>`}
    </div>
    ${status}
    <div class="msg-actions">
      <${Siblings} conv=${conv} msg=${msg} sig=${sig} />
      ${running
        ? html`<button type="button" class="act act-stop" onClick=${() => store.stop(conv, msg.id)}>${t('chat.stop')}</button>`
        : html`
          <button type="button" class="act act-regenerate" disabled=${temp || !question || conv.running}
            onClick=${() => question && store.regenerate(conv, question)}>${t('chat.regenerate')}</button>
          <${CopyButton} text=${msg.content} />`}
      ${msg.model && html`<span class="msg-model">${msg.model}</span>`}
    </div>`;
}

/**
 * The conversation's objects change in place, so a message is drawn again only when what it
 * shows changed: `sig` (see `signature`) says so. A reply starting or ending elsewhere changes
 * only the buttons bound to `conv.running`.
 * @param {{conv: store.Conv, msg: store.Msg, eager: boolean, onGrow: () => void, sig: string}} props
 */
export class Message extends Component {
  /** @param {{conv: store.Conv, msg: store.Msg, eager: boolean, onGrow: () => void, sig: string}} next */
  shouldComponentUpdate(next) {
    const p = this.props;
    return next.sig !== p.sig || next.msg !== p.msg || next.eager !== p.eager || next.conv !== p.conv;
  }

  /** @param {{conv: store.Conv, msg: store.Msg, eager: boolean, onGrow: () => void, sig: string}} props */
  render({ conv, msg, eager, onGrow, sig }) {
    // `sig` goes down too: the parts read signals (the language), and @preact/signals then
    // skips them when their props are the same objects as before.
    const mine = msg.role === 'user';
    return html`<article class=${`msg msg-${mine ? 'user' : msg.role}`} data-id=${msg.id}
        data-role=${msg.role} data-finish=${msg.finish_reason || ''}
        data-streaming=${msg.stream && msg.stream.running ? '1' : null}
        aria-label=${mine ? t('chat.you') : t('chat.assistant')}>
      ${mine
        ? html`<${Question} conv=${conv} msg=${msg} sig=${sig} />`
        : msg.role === 'system'
          ? html`<div class="bubble system-text">${msg.content}</div>`
          : html`<${Reply} conv=${conv} msg=${msg} eager=${eager} onGrow=${onGrow} sig=${sig} />`}
    </article>`;
  }
}

/**
 * What a message shows, as a string that changes when any of it does: its id, text, end,
 * error, model, whether it streams, its place among its siblings, and the page's language.
 * @param {store.Conv} conv @param {store.Msg} msg
 */
export function signature(conv, msg) {
  const sibs = conv.children(msg.parent_id);
  const running = msg.stream && msg.stream.running ? 1 : 0;
  return `${locale.value}|${msg.id}|${msg.content.length}|${msg.finish_reason}|${msg.error}|${msg.model}|${running}|${msg.pending ? 1 : 0}|${sibs.indexOf(msg.id)}/${sibs.length}`;
}
