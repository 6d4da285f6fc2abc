/**
 * Passwords: changing one's own (the current one, the new one twice), and the form that comes
 * before anything else after logging in with a one-time password an administrator gave.
 */
import { html } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { changePassword } from '../api/account.js';
import { t } from '../i18n/index.js';

/**
 * The new password twice, with labels and the hint tied to the field.
 * @param {{prefix: string, autoFocus?: boolean}} props
 */
function NewPasswordFields({ prefix, autoFocus = false }) {
  const first = useRef(/** @type {HTMLInputElement|null} */ (null));
  useEffect(() => {
    if (autoFocus) first.current?.focus();
  }, []);
  return html`<div class="field">
      <label for=${`${prefix}-new`}>${t('account.newPassword')}</label>
      <input ref=${first} id=${`${prefix}-new`} name="new" type="password" class="input" autocomplete="new-password"
        required aria-describedby=${`${prefix}-hint`} />
      <span class="hint" id=${`${prefix}-hint`}>${t('account.passwordHint')}</span>
    </div>
    <div class="field">
      <label for=${`${prefix}-repeat`}>${t('account.repeatPassword')}</label>
      <input id=${`${prefix}-repeat`} name="repeat" type="password" class="input" autocomplete="new-password" required />
    </div>`;
}

/** What is wrong with the two new passwords of a form, if anything. @param {FormData} data */
function newPasswordProblem(data) {
  const next = String(data.get('new') || '');
  if (next.length < 8) return t('account.passwordShort');
  if (next !== data.get('repeat')) return t('account.passwordMismatch');
  return null;
}

/**
 * @param {{ok: boolean, text: string}|null} message
 * @param {string} className
 */
function Message(message, className) {
  return (
    message &&
    html`<div class=${`alert ${message.ok ? '' : 'alert-error'} ${className}`} role=${message.ok ? 'status' : 'alert'}>
      ${message.text}
    </div>`
  );
}

export function PasswordForm() {
  const [message, setMessage] = useState(/** @type {{ok: boolean, text: string}|null} */ (null));
  const [busy, setBusy] = useState(false);

  const submit = async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const data = new FormData(form);
    const problem = newPasswordProblem(data);
    if (problem) return setMessage({ ok: false, text: problem });
    setBusy(true);
    setMessage(null);
    try {
      await changePassword(String(data.get('current') || ''), String(data.get('new') || ''));
      form.reset();
      setMessage({ ok: true, text: t('account.passwordChanged') });
    } catch (e) {
      const wrong = e.status === 401 || e.code === 'invalid_credentials';
      setMessage({ ok: false, text: wrong ? t('account.passwordWrong') : e.message });
    } finally {
      setBusy(false);
    }
  };

  return html`<section aria-labelledby="password-title">
    <h2 id="password-title">${t('account.password')}</h2>
    ${Message(message, 'password-message')}
    <form onSubmit=${submit}>
      <input type="text" name="username" autocomplete="username" hidden aria-hidden="true" />
      <div class="field">
        <label for="pw-current">${t('account.currentPassword')}</label>
        <input id="pw-current" name="current" type="password" class="input" autocomplete="current-password" required />
      </div>
      <${NewPasswordFields} prefix="pw" />
      <button type="submit" class="btn btn-primary" disabled=${busy}>${t('account.changePassword')}</button>
    </form>
  </section>`;
}

/**
 * After a login with a one-time password: the user chooses their own before anything else.
 * `onChoose` logs in again with the new password (and throws the server's error if refused).
 * @param {{username: string, onChoose: (password: string) => Promise<void>, onCancel: () => void}} props
 */
export function FirstPasswordForm({ username, onChoose, onCancel }) {
  const [message, setMessage] = useState(/** @type {{ok: boolean, text: string}|null} */ (null));
  const [busy, setBusy] = useState(false);

  const submit = async (event) => {
    event.preventDefault();
    const data = new FormData(event.currentTarget);
    const problem = newPasswordProblem(data);
    if (problem) return setMessage({ ok: false, text: problem });
    setBusy(true);
    setMessage(null);
    try {
      await onChoose(String(data.get('new') || ''));
    } catch (e) {
      const same = e.status === 400; // the one refusal of a well-formed new password
      setMessage({ ok: false, text: same ? t('login.firstPasswordSame') : e.message || String(e) });
      setBusy(false);
    }
  };

  return html`<section class="first-password" aria-labelledby="first-password-title" aria-describedby="first-password-why">
    <h1 id="first-password-title">${t('login.firstPassword')}</h1>
    <p class="sub" id="first-password-why">${t('login.firstPasswordWhy', { name: username })}</p>
    ${Message(message, 'password-message')}
    <form onSubmit=${submit} aria-busy=${busy ? 'true' : 'false'}>
      <input type="text" name="username" value=${username} autocomplete="username" hidden aria-hidden="true" readonly />
      <${NewPasswordFields} prefix="first-pw" autoFocus />
      <div class="row">
        <button type="button" class="btn" onClick=${onCancel}>${t('common.cancel')}</button>
        <span class="spacer"></span>
        <button type="submit" class="btn btn-primary" disabled=${busy}>${t('login.firstPasswordSubmit')}</button>
      </div>
    </form>
  </section>`;
}
