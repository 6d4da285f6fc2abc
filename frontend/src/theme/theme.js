/**
 * Light, dark, or whatever the system says. The choice is remembered in localStorage and set
 * as `data-theme` on <html>, which theme.css reads; "system" removes it so that
 * `prefers-color-scheme` decides.
 */
import { signal, effect } from '@preact/signals';
import { html } from 'htm/preact';
import { t } from '../i18n/index.js';

const STORAGE_KEY = 'chatgate.theme';
const CHOICES = ['system', 'light', 'dark'];

function stored() {
  try {
    const value = localStorage.getItem(STORAGE_KEY);
    return value && CHOICES.includes(value) ? value : 'system';
  } catch {
    return 'system';
  }
}

/** 'system' | 'light' | 'dark' */
export const theme = signal(stored());

effect(() => {
  const root = document.documentElement;
  if (theme.value === 'system') root.removeAttribute('data-theme');
  else root.setAttribute('data-theme', theme.value);
});

/** @param {string} value */
export function setTheme(value) {
  if (!CHOICES.includes(value)) return;
  try {
    localStorage.setItem(STORAGE_KEY, value);
  } catch {
    /* private mode */
  }
  theme.value = value;
}

/** A small select for the theme, labelled for screen readers. */
export function ThemeSwitch({ id = 'theme-switch' }) {
  return html`<label class="sr-only" for=${id}>${t('theme.label')}</label>
    <select
      id=${id}
      class="input"
      value=${theme.value}
      onChange=${(e) => setTheme(e.currentTarget.value)}
    >
      ${CHOICES.map((c) => html`<option value=${c}>${t(`theme.${c}`)}</option>`)}
    </select>`;
}
