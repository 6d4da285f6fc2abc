/** Copying text for the user, with a fallback where the Clipboard API is not offered
 * (a page served over plain http from another machine is not a secure context). */
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { t } from '../i18n/index.js';
import { Icon } from './icons.js';

/** @param {string} text */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = document.createElement('textarea');
    area.value = text;
    area.setAttribute('readonly', '');
    area.style.position = 'fixed';
    area.style.opacity = '0';
    document.body.append(area);
    area.select();
    const done = document.execCommand('copy');
    area.remove();
    return done;
  }
}

/** A button that copies `text` and says so for a moment. */
export function CopyButton({ text, label, className = 'btn' }) {
  const [copied, setCopied] = useState(false);
  return html`<button
    type="button"
    class=${className}
    aria-label=${label || t('common.copy')}
    onClick=${async () => {
      if (await copyText(text)) {
        setCopied(true);
        setTimeout(() => setCopied(false), 1500);
      }
    }}
  >
    <${Icon} name="copy" /> <span aria-live="polite">${copied ? t('common.copied') : t('common.copy')}</span>
  </button>`;
}
