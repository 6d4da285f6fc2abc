/** Changing one's password: the current one, the new one twice. */
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { changePassword } from '../api/account.js';
import { t } from '../i18n/index.js';

export function PasswordForm() {
  const [message, setMessage] = useState(/** @type {{ok: boolean, text: string}|null} */ (null));
  const [busy, setBusy] = useState(false);

  const submit = async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const data = new FormData(form);
    const current = String(data.get('current') || '');
    const next = String(data.get('new') || '');
    if (next.length < 8) return setMessage({ ok: false, text: t('account.passwordShort') });
    if (next !== data.get('repeat')) return setMessage({ ok: false, text: t('account.passwordMismatch') });
    setBusy(true);
    setMessage(null);
    try {
      await changePassword(current, next);
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
    ${message &&
    html`<div class=${`alert ${message.ok ? '' : 'alert-error'} password-message`} role=${message.ok ? 'status' : 'alert'}>
      ${message.text}
    </div>`}
    <form onSubmit=${submit}>
      <input type="text" name="username" autocomplete="username" hidden aria-hidden="true" />
      <div class="field">
        <label for="pw-current">${t('account.currentPassword')}</label>
        <input id="pw-current" name="current" type="password" class="input" autocomplete="current-password" required />
      </div>
      <div class="field">
        <label for="pw-new">${t('account.newPassword')}</label>
        <input id="pw-new" name="new" type="password" class="input" autocomplete="new-password" required aria-describedby="pw-hint" />
        <span class="hint" id="pw-hint">${t('account.passwordHint')}</span>
      </div>
      <div class="field">
        <label for="pw-repeat">${t('account.repeatPassword')}</label>
        <input id="pw-repeat" name="repeat" type="password" class="input" autocomplete="new-password" required />
      </div>
      <button type="submit" class="btn btn-primary" disabled=${busy}>${t('account.changePassword')}</button>
    </form>
  </section>`;
}
