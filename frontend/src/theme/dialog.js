/**
 * A modal dialog on the native <dialog> element: the browser keeps focus inside it and makes
 * the rest of the page inert, Esc closes it, and focus goes back to where it was on close.
 */
import { html } from 'htm/preact';
import { useEffect, useRef } from 'preact/hooks';
import { t } from '../i18n/index.js';
import { Icon } from './icons.js';

let counter = 0;
const FOCUSABLE =
  'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

/**
 * @param {{open: boolean, onClose: () => void, title: string, children?: any, footer?: any,
 *   wide?: boolean, id?: string}} props
 */
export function Dialog({ open, onClose, title, children, footer, wide, id }) {
  const ref = useRef(/** @type {HTMLDialogElement|null} */ (null));
  const titleId = useRef(`dialog-title-${++counter}`);
  const returnTo = useRef(/** @type {Element|null} */ (null));

  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (open && !dialog.open) {
      returnTo.current = document.activeElement;
      dialog.showModal();
    } else if (!open && dialog.open) {
      dialog.close();
    }
  }, [open]);

  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return undefined;
    const closed = () => {
      const back = returnTo.current;
      if (back instanceof HTMLElement && back.isConnected) back.focus();
      if (open) onClose();
    };
    dialog.addEventListener('close', closed);
    return () => dialog.removeEventListener('close', closed);
  }, [open, onClose]);

  const clickBackdrop = (event) => {
    if (event.target === ref.current) onClose();
  };

  // A modal <dialog> keeps the page inert, but Tab may still leave for the browser's own
  // controls: keep it cycling through the dialog's controls.
  const keepFocus = (event) => {
    if (event.key !== 'Tab' || !ref.current) return;
    const controls = [...ref.current.querySelectorAll(FOCUSABLE)].filter(
      (el) => el instanceof HTMLElement && el.offsetParent !== null,
    );
    if (!controls.length) return;
    const first = /** @type {HTMLElement} */ (controls[0]);
    const last = /** @type {HTMLElement} */ (controls[controls.length - 1]);
    if (event.shiftKey && document.activeElement === first) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      first.focus();
    }
  };

  return html`<dialog
    ref=${ref}
    id=${id}
    class="dialog"
    style=${wide ? 'width: min(760px, calc(100vw - 24px))' : undefined}
    aria-labelledby=${titleId.current}
    onClick=${clickBackdrop}
    onKeyDown=${keepFocus}
  >
    ${open &&
    html`<div class="dialog-head">
        <h2 id=${titleId.current}>${title}</h2>
        <button type="button" class="icon-btn" aria-label=${t('common.close')} onClick=${onClose}>
          <${Icon} name="close" />
        </button>
      </div>
      <div class="dialog-body">${children}</div>
      ${footer && html`<div class="dialog-foot">${footer}</div>`}`}
  </dialog>`;
}
