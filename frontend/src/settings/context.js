/**
 * "What will be sent": which earlier messages of the current path go with the next question,
 * as the server will fit them into the model's context window (the oldest left out first).
 */
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { conversationId } from '../state.js';
import { contextPreview } from '../api/conversations.js';
import { t, formatNumber } from '../i18n/index.js';
import { known } from './store.js';

export function ContextView({ conversation }) {
  const id = conversationId.value;
  const [preview, setPreview] = useState(/** @type {any|null} */ (null));
  const [error, setError] = useState(/** @type {string|null} */ (null));
  const settings = id ? known.value[id] : null;

  useEffect(() => {
    if (!id) return;
    setPreview(null);
    setError(null);
    contextPreview(id, { model: settings?.model, max_tokens: settings?.max_tokens })
      .then(setPreview)
      .catch((e) => setError(e.message));
  }, [id, settings?.model, settings?.max_tokens]);

  if (!id) return html`<p class="muted">${t('settings.contextNone')}</p>`;
  if (error) return html`<div class="alert alert-error" role="alert">${error}</div>`;
  if (!preview) return html`<p class="muted">${t('common.loading')}</p>`;
  const texts = new Map((conversation?.messages || []).map((m) => [m.id, m.content]));
  const total = preview.messages.length;
  if (total === 0) return html`<p class="muted">${t('settings.contextNone')}</p>`;
  return html`<div class="context-view">
    <p>
      ${t('settings.contextIntro', {
        included: preview.included,
        total,
        tokens: formatNumber(preview.tokens_sent),
        budget: formatNumber(preview.budget),
        window: formatNumber(preview.context_window),
        reserve: formatNumber(preview.reply_reserve),
      })}
      ${' '}<span class="muted">${preview.exact ? t('settings.contextExact') : t('settings.contextEstimated')}</span>
    </p>
    <ol class="context-list">
      ${preview.system_tokens > 0 &&
      html`<li data-sent="true">
        <span class="role">${t('settings.systemRole')}</span>
        <span class="text">${conversation?.system || ''}</span>
        <span class="badge badge-ok">${t('settings.tokens', { n: preview.system_tokens })}</span>
      </li>`}
      ${preview.messages.map(
        (m) => html`<li data-sent=${m.included ? 'true' : 'false'} key=${m.id}>
          <span class="role">${m.role}</span>
          <span class="text">${texts.get(m.id) || ''}</span>
          <span class=${`badge ${m.included ? 'badge-ok' : ''}`}>
            ${m.included ? t('settings.sent') : t('settings.leftOut')} · ${t('settings.tokens', { n: m.tokens })}
          </span>
        </li>`,
      )}
    </ol>
  </div>`;
}
