/**
 * The login page. A failed login says why in plain words: a wrong name or password, a
 * disabled account, or too many attempts (with how long to wait). When sign-up is on, a
 * sign-up form follows. A login with a one-time password (one an administrator gave) shows
 * "choose a new password" before anything else: the server sets no cookie for such a login, so
 * the page logs in again with the new password, which makes it the user's own.
 */
import { html } from 'htm/preact';
import { useState, useRef, useEffect } from 'preact/hooks';
import { me, navigate } from '../state.js';
import { whoAmI } from '../api/account.js';
import { t, locale, setLocale } from '../i18n/index.js';
import { ThemeSwitch } from '../theme/theme.js';
import { refreshUsage } from '../account/limits.js';
import { request } from '../api/core.js';
import { FirstPasswordForm } from '../account/password.js';

/**
 * Log in with the HttpOnly cookie, changing the password at once when `newPassword` is given.
 * @param {string} username @param {string} password @param {string} [newPassword]
 */
function logIn(username, password, newPassword) {
  const body = { username, password, cookie: true };
  return request('POST', '/api/v1/auth/login', newPassword ? { ...body, new_password: newPassword } : body);
}

/** The message for a failed login, by the server's error code. */
function failure(error) {
  if (error.code === 'account_pending') {
    return { title: t('login.pending'), detail: t('login.pendingHint') };
  }
  if (error.code === 'account_disabled' || (error.status === 403 && error.code !== 'permission_denied')) {
    return { title: t('login.disabled'), detail: t('login.disabledHint') };
  }
  if (error.status === 429 || error.code === 'too_many_attempts') {
    return { title: t('login.tooMany'), detail: error.message || t('login.tooManyLater') };
  }
  if (error.status === 401 || error.code === 'invalid_credentials') {
    return { title: t('login.invalid'), detail: null };
  }
  return { title: t('login.failed', { message: error.message || String(error) }), detail: null };
}

/** English / 中文, as a select with a label. */
export function LanguageSwitch({ id = 'lang-switch' }) {
  return html`<label class="sr-only" for=${id}>${t('lang.label')}</label>
    <select
      id=${id}
      class="input"
      value=${locale.value}
      onChange=${(e) => setLocale(e.currentTarget.value)}
    >
      <option value="en" lang="en">English</option>
      <option value="zh" lang="zh-CN">简体中文</option>
    </select>`;
}

export function Login() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(/** @type {{title: string, detail: string|null}|null} */ (null));
  // The name and one-time password of a login that must choose a new password first.
  const [oneTime, setOneTime] = useState(/** @type {{name: string, password: string}|null} */ (null));
  const user = useRef(/** @type {HTMLInputElement|null} */ (null));
  const alertRef = useRef(/** @type {HTMLDivElement|null} */ (null));

  const [signup, setSignup] = useState('off');
  // The sign-up form is loaded only when sign-up is on: most servers never show it.
  const [SignupForm, setSignupForm] = useState(/** @type {any} */ (null));
  const invite = new URLSearchParams(location.search).get('invite') || '';

  useEffect(() => {
    if (!invite) user.current?.focus();
    request('GET', '/api/v1/auth/signup')
      .then(async (s) => {
        const mode = (s && s.mode) || 'off';
        if (mode === 'off') return;
        const module = await import('./signup.js');
        setSignupForm(() => module.SignupForm);
        setSignup(mode);
      })
      .catch(() => setSignup('off'));
  }, []);
  useEffect(() => {
    if (error) alertRef.current?.focus();
  }, [error]);

  /** Log in and open the chat. @param {string} name @param {string} password @param {string} [newPassword] */
  const enter = async (name, password, newPassword) => {
    const answer = await logIn(name, password, newPassword);
    if (answer && answer.password_change_required) {
      setOneTime({ name, password });
      setBusy(false);
      return;
    }
    const who = await whoAmI();
    me.value = who && who.user ? who.user : who;
    refreshUsage();
    navigate('/', { replace: true });
  };

  const submit = async (event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    setBusy(true);
    setError(null);
    try {
      await enter(String(form.get('username') || ''), String(form.get('password') || ''));
    } catch (caught) {
      setError(failure(caught));
      setBusy(false);
    }
  };

  if (oneTime) {
    return html`<div class="page-center">
      <div class="login-card">
        <${FirstPasswordForm}
          username=${oneTime.name}
          onChoose=${(/** @type {string} */ next) => enter(oneTime.name, oneTime.password, next)}
          onCancel=${() => setOneTime(null)}
        />
      </div>
    </div>`;
  }

  return html`<div class="page-center">
    <div class="login-card">
      <h1>${t('login.title')}</h1>
      <p class="sub">${t('login.sub')}</p>
      ${error &&
      html`<div class="alert alert-error login-error" role="alert" tabindex="-1" ref=${alertRef}>
        <strong>${error.title}</strong>
        ${error.detail && html`<p>${error.detail}</p>`}
      </div>`}
      <form method="post" action="/login" onSubmit=${submit} aria-busy=${busy ? 'true' : 'false'}>
        <div class="field">
          <label for="login-username">${t('login.username')}</label>
          <input
            ref=${user}
            id="login-username"
            name="username"
            class="input"
            autocomplete="username"
            autocapitalize="none"
            spellcheck=${false}
            required
          />
        </div>
        <div class="field">
          <label for="login-password">${t('login.password')}</label>
          <input
            id="login-password"
            name="password"
            type="password"
            class="input"
            autocomplete="current-password"
            required
          />
        </div>
        <button type="submit" class="btn btn-primary" disabled=${busy}>
          ${busy ? t('login.busy') : t('login.submit')}
        </button>
      </form>
      ${signup !== 'off' && SignupForm && html`<${SignupForm} mode=${signup} invite=${invite} onActive=${enter} />`}
      <div class="login-tools">
        <${LanguageSwitch} id="login-lang" />
        <${ThemeSwitch} id="login-theme" />
      </div>
    </div>
  </div>`;
}
