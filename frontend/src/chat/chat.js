// The chat: the open conversation's messages and the input.
import { html } from 'htm/preact';
import { t } from '../i18n/index.js';

export function Chat() {
  return html`<section class="chat">
    <div class="messages" role="log" aria-live="polite"></div>
    <form class="composer">
      <label class="sr-only" for="chat-input">${t('chat.input.label')}</label>
      <textarea id="chat-input" rows="1" placeholder=${t('chat.input.placeholder')}></textarea>
      <button type="submit">${t('chat.send')}</button>
    </form>
  </section>`;
}
