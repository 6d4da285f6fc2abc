/**
 * The sign-up form under the login form, shown only when the server says sign-up is on
 * (`GET /api/v1/auth/signup`). With `?invite=CODE` in the address the code is filled in. An
 * account that waits for an administrator's approval is told so; an active one is logged in.
 */
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { request } from '../api/core.js';
import { t, register } from '../i18n/index.js';
import './signup.css';

register({
  en: {
    'signup.title': 'Create an account',
    'signup.open': 'No account yet? Sign up',
    'signup.username': 'User name',
    'signup.password': 'Password (8 characters or more)',
    'signup.again': 'Password again',
    'signup.invite': 'Invite code',
    'signup.submit': 'Sign up',
    'signup.busy': 'Signing up…',
    'signup.mismatch': 'The two passwords differ.',
    'signup.pending': 'Your account is waiting for approval.',
    'signup.pendingHint': 'An administrator will approve it; then log in with your name and password.',
    'signup.failed': 'Could not sign up: {message}',
    'signup.approvalHint': 'An administrator approves new accounts before they can log in.',
    'signup.inviteHint': 'Sign-up needs an invite code.',
  },
  zh: {
    'signup.title': '注册账号',
    'signup.open': '还没有账号？注册',
    'signup.username': '用户名',
    'signup.password': '密码（至少 8 个字符）',
    'signup.again': '再次输入密码',
    'signup.invite': '邀请码',
    'signup.submit': '注册',
    'signup.busy': '正在注册…',
    'signup.mismatch': '两次输入的密码不一致。',
    'signup.pending': '你的账号正在等待审核。',
    'signup.pendingHint': '管理员审核通过后，即可用用户名和密码登录。',
    'signup.failed': '无法注册：{message}',
    'signup.approvalHint': '新账号需经管理员审核后才能登录。',
    'signup.inviteHint': '注册需要邀请码。',
  },
});

/**
 * @param {{mode: string, invite: string, onActive: (username: string, password: string) => Promise<void>}} props
 */
export function SignupForm({ mode, invite, onActive }) {
  const [open, setOpen] = useState(Boolean(invite));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(/** @type {string|null} */ (null));
  const [pending, setPending] = useState(false);

  if (!open) {
    return html`<p class="signup-open"><button type="button" class="btn btn-ghost" onClick=${() => setOpen(true)}>
      ${t('signup.open')}</button></p>`;
  }
  const submit = async (event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const username = String(form.get('username') || '').trim();
    const password = String(form.get('password') || '');
    if (password !== String(form.get('again') || '')) return setError(t('signup.mismatch'));
    const code = String(form.get('invite') || '').trim();
    setBusy(true);
    setError(null);
    try {
      const made = await request('POST', '/api/v1/auth/signup', { username, password, invite: code || null });
      if (made.status === 'pending') {
        setPending(true);
        setBusy(false);
      } else {
        await onActive(username, password);
      }
    } catch (e) {
      setError(t('signup.failed', { message: e.message }));
      setBusy(false);
    }
  };
  if (pending) {
    return html`<div class="alert signup-pending" role="status">
      <strong>${t('signup.pending')}</strong>
      <p>${t('signup.pendingHint')}</p>
    </div>`;
  }
  return html`<section class="signup" aria-labelledby="signup-title">
    <h2 id="signup-title">${t('signup.title')}</h2>
    <p class="muted">${mode === 'invite' ? t('signup.inviteHint') : t('signup.approvalHint')}</p>
    ${error && html`<div class="alert alert-error signup-error" role="alert">${error}</div>`}
    <form onSubmit=${submit} aria-busy=${busy ? 'true' : 'false'}>
      <div class="field">
        <label for="signup-username">${t('signup.username')}</label>
        <input id="signup-username" name="username" class="input" autocomplete="username"
          autocapitalize="none" spellcheck=${false} maxlength="64" required />
      </div>
      <div class="field">
        <label for="signup-password">${t('signup.password')}</label>
        <input id="signup-password" name="password" type="password" class="input" minlength="8"
          autocomplete="new-password" required />
      </div>
      <div class="field">
        <label for="signup-again">${t('signup.again')}</label>
        <input id="signup-again" name="again" type="password" class="input" minlength="8"
          autocomplete="new-password" required />
      </div>
      ${(mode === 'invite' || invite) &&
      html`<div class="field">
        <label for="signup-invite">${t('signup.invite')}</label>
        <input id="signup-invite" name="invite" class="input" value=${invite} autocomplete="off"
          autocapitalize="none" spellcheck=${false} required=${mode === 'invite'} />
      </div>`}
      <button type="submit" class="btn btn-primary" disabled=${busy}>${busy ? t('signup.busy') : t('signup.submit')}</button>
    </form>
  </section>`;
}
