/**
 * Translations: English and Simplified Chinese. The page follows the browser's languages until
 * the user picks one, which is remembered in localStorage. Components read `locale.value` (via
 * `t`) while rendering, so a switch re-renders everything that shows text.
 */
import { signal, effect } from '@preact/signals';
import { en, zh } from './strings.js';

const STORAGE_KEY = 'chatgate.locale';
/** @type {Record<string, Record<string, string>>} */
const tables = { en: { ...en }, zh: { ...zh } };
export const LOCALES = /** @type {const} */ (['en', 'zh']);

/** The language the browser prefers, among the ones we have. */
function fromBrowser() {
  const wanted = navigator.languages?.length ? navigator.languages : [navigator.language || 'en'];
  for (const tag of wanted) {
    const base = String(tag).toLowerCase().split('-')[0];
    if (base === 'zh') return 'zh';
    if (base === 'en') return 'en';
  }
  return 'en';
}

function stored() {
  try {
    const value = localStorage.getItem(STORAGE_KEY);
    return value && value in tables ? value : null;
  } catch {
    return null;
  }
}

/** The current locale, 'en' or 'zh'. */
export const locale = signal(stored() || fromBrowser());

effect(() => {
  document.documentElement.lang = locale.value === 'zh' ? 'zh-CN' : 'en';
});

/** Switch the language and remember the choice. @param {string} value */
export function setLocale(value) {
  if (!(value in tables)) return;
  try {
    localStorage.setItem(STORAGE_KEY, value);
  } catch {
    /* private mode: the choice lasts for this page only */
  }
  locale.value = value;
}

/**
 * Add strings (e.g. the chat's own) to the tables.
 * @param {Record<string, Record<string, string>>} more
 */
export function register(more) {
  for (const [lang, strings] of Object.entries(more)) {
    tables[lang] = { ...(tables[lang] || {}), ...strings };
  }
}

/**
 * The text for `key` in the current locale (English, then the key itself, as fallbacks), with
 * `{name}` placeholders filled from `vars`.
 * @param {string} key
 * @param {Record<string, unknown>} [vars]
 */
export function t(key, vars) {
  const lang = locale.value;
  const text = tables[lang]?.[key] ?? tables.en[key] ?? key;
  if (!vars) return text;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
}

/** A date and time in the current locale. @param {number} seconds Unix time */
export function formatDate(seconds) {
  return new Date(seconds * 1000).toLocaleString(locale.value === 'zh' ? 'zh-CN' : 'en', {
    dateStyle: 'medium',
    timeStyle: 'short',
  });
}

/** A number with the locale's grouping. @param {number} n */
export function formatNumber(n) {
  return n.toLocaleString(locale.value === 'zh' ? 'zh-CN' : 'en');
}

/** A month and year, for the sidebar's older groups. @param {Date} day */
export function formatMonth(day) {
  return day.toLocaleDateString(locale.value === 'zh' ? 'zh-CN' : 'en', {
    year: 'numeric',
    month: 'long',
  });
}

/** How long until a moment, as "3 h 12 min". @param {number} seconds */
export function formatDuration(seconds) {
  const total = Math.max(0, Math.ceil(seconds / 60));
  const hours = Math.floor(total / 60);
  const minutes = total % 60;
  if (hours) return t('duration.hm', { h: hours, m: minutes });
  return t('duration.m', { m: minutes });
}
