/** Small pieces the console's sections share: an error line, a loading line, a bar, a number. */
import { html } from 'htm/preact';
import { t, formatNumber, formatDate } from '../i18n/index.js';

/** @param {{error: string | null}} props */
export function ErrorLine({ error }) {
  return error ? html`<div class="alert alert-error" role="alert">${error}</div>` : null;
}

export function Loading() {
  return html`<p class="muted" aria-busy="true">${t('common.loading')}</p>`;
}

/**
 * "used / limit" with a small bar; "used · no limit" when there is none.
 * @param {{used: number, limit: number | null | undefined, label: string}} props
 */
export function UsedOf({ used, limit, label }) {
  if (limit == null || limit < 0) {
    return html`<span class="used-of" aria-label=${`${label}: ${t('console.usedNoLimit', { used: formatNumber(used) })}`}>
      <span class="used-num">${t('console.usedNoLimit', { used: formatNumber(used) })}</span>
    </span>`;
  }
  const share = limit === 0 ? 1 : Math.min(1, used / limit);
  const state = share >= 1 ? 'is-out' : share >= 0.8 ? 'is-low' : '';
  const text = `${formatNumber(used)} / ${formatNumber(limit)}`;
  return html`<span class="used-of">
    <span class="used-num" data-used=${used} data-limit=${limit}>${text}</span>
    <span class="meter-bar ${state}" role="meter" aria-label=${label} aria-valuemin="0"
      aria-valuemax=${limit} aria-valuenow=${Math.min(used, limit)} aria-valuetext=${text}>
      <span style=${`width: ${Math.round(share * 100)}%`}></span>
    </span>
  </span>`;
}

/** A limit as text: the number, or "no limit". @param {number | null | undefined} n */
export function limitText(n) {
  return n == null || n < 0 ? t('common.none') : formatNumber(n);
}

/** Unix seconds as a date and time, or a dash. @param {number | null | undefined} s */
export function when(s) {
  return s ? formatDate(s) : '—';
}
