/**
 * Short notices at the bottom of the page, optionally with one action ("Undo"). They are
 * announced politely to screen readers and go away by themselves.
 */
import { signal } from '@preact/signals';
import { html } from 'htm/preact';

/** @typedef {{id: number, text: string, action?: {label: string, run: () => void}}} Toast */
/** @type {import('@preact/signals').Signal<Toast[]>} */
export const toasts = signal([]);
let next = 0;

/**
 * Show a notice for `ms` milliseconds; returns a function that removes it early.
 * @param {string} text
 * @param {{action?: {label: string, run: () => void}, ms?: number, onExpire?: () => void}} [options]
 */
export function toast(text, { action, ms = 5000, onExpire } = {}) {
  const id = ++next;
  toasts.value = [...toasts.value, { id, text, action }];
  const remove = () => {
    toasts.value = toasts.value.filter((item) => item.id !== id);
  };
  const timer = setTimeout(() => {
    remove();
    onExpire?.();
  }, ms);
  return () => {
    clearTimeout(timer);
    remove();
  };
}

export function Toasts() {
  return html`<div class="toasts" role="status" aria-live="polite">
    ${toasts.value.map(
      (item) => html`<div class="toast" key=${item.id}>
        <span>${item.text}</span>
        ${item.action &&
        html`<button
          type="button"
          class="btn"
          onClick=${() => {
            toasts.value = toasts.value.filter((x) => x.id !== item.id);
            item.action.run();
          }}
        >
          ${item.action.label}
        </button>`}
      </div>`,
    )}
  </div>`;
}
