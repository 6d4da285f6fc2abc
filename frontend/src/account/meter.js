/**
 * The small meter in the top bar: today's requests (and tokens, when limited) used against
 * the limits. It refreshes when a reply ends (`usage-changed` on the bus) and shows a notice,
 * with the limit and when it resets, once a daily quota is used up.
 */
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { bus, usage, navigate, me } from '../state.js';
import { t } from '../i18n/index.js';
import { Icon } from '../theme/icons.js';
import { refreshUsage, exhausted, quotaSentences, countText } from './limits.js';

/** "3/10", or "3" with no limit: for a phone's narrow top bar. */
function shortText(count) {
  return count.limit == null ? String(count.used) : `${count.used}/${count.limit}`;
}

function Bar({ count }) {
  if (!count || count.limit == null || count.limit <= 0) return null;
  const share = Math.min(1, count.used / count.limit);
  const state = count.remaining === 0 ? 'is-out' : share >= 0.8 ? 'is-low' : '';
  return html`<span class=${`meter-bar ${state}`} aria-hidden="true">
    <span style=${`width: ${Math.round(share * 100)}%`}></span>
  </span>`;
}

/** The notice shown when today's quota is used up. */
export function QuotaNotice({ onDismiss }) {
  const today = usage.value;
  const which = exhausted(today);
  if (!which) return null;
  const [first, second] = quotaSentences(today, which);
  return html`<div class="alert alert-error quota-notice" role="alert">
    <strong>${t('quota.title')}</strong>
    <p>${first}</p>
    <p>${second}</p>
    ${onDismiss &&
    html`<button type="button" class="icon-btn quota-dismiss" aria-label=${t('common.close')} onClick=${onDismiss}>
      <${Icon} name="close" />
    </button>`}
  </div>`;
}

export function Meter() {
  const [dismissed, setDismissed] = useState(/** @type {string|null} */ (null));
  useEffect(() => {
    refreshUsage();
    const again = () => refreshUsage();
    bus.addEventListener('usage-changed', again);
    // A quota refused by the server also means the meter is out of date.
    bus.addEventListener('quota-exceeded', again);
    const timer = setInterval(again, 60_000);
    return () => {
      bus.removeEventListener('usage-changed', again);
      bus.removeEventListener('quota-exceeded', again);
      clearInterval(timer);
    };
  }, [me.value]);

  const today = usage.value;
  if (!today || !today.requests) return null;
  const { requests, tokens } = today;
  const showTokens = tokens && tokens.limit != null;
  const summary = t('meter.summary', {
    requests: countText(requests),
    tokens: countText(tokens),
  });
  const which = exhausted(today);
  const noticeKey = which ? `${today.day}:${which}` : null;

  return html`<a
      class="meter"
      href="/account"
      aria-label=${`${t('meter.label')}: ${summary}`}
      title=${summary}
      data-requests-used=${requests.used}
      data-tokens-used=${tokens?.used}
      onClick=${(e) => {
        e.preventDefault();
        navigate('/account');
      }}
    >
      <span class="meter-line">
        <span class="meter-label">${t('meter.requests')}</span>
        <span class="meter-num">${countText(requests)}</span>
        <span class="meter-short" aria-hidden="true">${shortText(requests)}</span>
        <${Bar} count=${requests} />
      </span>
      ${showTokens &&
      html`<span class="meter-line meter-tokens">
        <span class="meter-label">${t('meter.tokens')}</span>
        <span class="meter-num">${countText(tokens)}</span>
        <${Bar} count=${tokens} />
      </span>`}
    </a>
    ${which && dismissed !== noticeKey &&
    html`<div class="quota-float"><${QuotaNotice} onDismiss=${() => setDismissed(noticeKey)} /></div>`}`;
}
