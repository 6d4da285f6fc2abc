/**
 * Today's usage as the meter and the account page show it, and the words for a used-up quota:
 * which limit, how large, and when it resets (the server's day, in its time zone).
 */
import { usage } from '../state.js';
import { usageToday } from '../api/account.js';
import { t, formatNumber, formatDuration, locale } from '../i18n/index.js';

/** @typedef {{used: number, limit: number|null, remaining: number|null}} Count */
/** @typedef {{day: string, timezone: string, resets_at: number, resets_in: number,
 *   requests: Count, tokens: Count, rpm?: Count, streams?: Count}} Today */

let inFlight = /** @type {Promise<void>|null} */ (null);

/** Fetch today's usage into the shared `usage` signal (one request at a time). */
export function refreshUsage() {
  if (!inFlight) {
    inFlight = usageToday()
      .then((today) => {
        usage.value = { ...today, fetched_at: Date.now() };
      })
      .catch(() => {
        /* the meter keeps what it had */
      })
      .finally(() => {
        inFlight = null;
      });
  }
  return inFlight;
}

/** Seconds until the day's counts reset, counted from when they were fetched. */
export function resetsIn(today) {
  const fetched = today.fetched_at || Date.now();
  return Math.max(0, today.resets_in - (Date.now() - fetched) / 1000);
}

/** The reset moment as a local clock time. */
export function resetTime(today) {
  return new Date(Math.ceil(today.resets_at / 60) * 60 * 1000).toLocaleString(locale.value === 'zh' ? 'zh-CN' : 'en', {
    timeZone: today.timezone || undefined,
    hour: '2-digit',
    minute: '2-digit',
    month: 'short',
    day: 'numeric',
  });
}

/** Which daily limit is used up, if any: 'requests', 'tokens' or null. */
export function exhausted(today) {
  if (!today) return null;
  if (today.requests?.limit != null && today.requests.remaining === 0) return 'requests';
  if (today.tokens?.limit != null && today.tokens.remaining === 0) return 'tokens';
  return null;
}

/** The sentences that say a quota is used up, with its size and when it resets. */
export function quotaSentences(today, which) {
  const count = today[which];
  return [
    t(which === 'tokens' ? 'quota.tokens' : 'quota.requests', { limit: formatNumber(count.limit) }),
    t('quota.resets', {
      time: resetTime(today),
      tz: today.timezone,
      in: formatDuration(resetsIn(today)),
    }),
  ];
}

/** "3 / 10" or "3 · no limit". @param {Count} count */
export function countText(count) {
  if (!count) return '';
  if (count.limit == null) return t('meter.unlimited', { used: formatNumber(count.used) });
  return t('meter.of', { used: formatNumber(count.used), limit: formatNumber(count.limit) });
}
