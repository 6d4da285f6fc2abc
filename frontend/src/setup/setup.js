/**
 * The first run's page (`/setup?token=…`, the link the server logs while no administrator
 * exists): a name and a password, twice, make the first administrator, who is then logged in
 * and taken to the console. A used or wrong link says so, and where to go instead.
 */
import { html } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { request } from '../api/core.js';
import { whoAmI } from '../api/account.js';
import { me, navigate } from '../state.js';
import { t, register } from '../i18n/index.js';
import { LanguageSwitch } from '../login/login.js';
import { ThemeSwitch } from '../theme/theme.js';

register({
  en: {
    'setup.title': 'Set up chatgate',
    'setup.sub': 'Create the first administrator.',
    'setup.username': 'Administrator’s user name',
    'setup.password': 'Password (8 characters or more)',
    'setup.again': 'Password again',
    'setup.submit': 'Create the administrator',
    'setup.busy': 'Creating…',
    'setup.mismatch': 'The two passwords differ.',
    'setup.noToken': 'This page needs the setup link from the server’s log (…/setup?token=…).',
    'setup.done': 'An administrator exists already, so this setup link no longer works.',
    'setup.doneHint': 'Log in instead.',
    'setup.badToken': 'This setup link is not valid.',
    'setup.badTokenHint': 'Copy the whole link from the server’s log; it works once, and only while no administrator exists.',
    'setup.failed': 'Could not create the administrator: {message}',
    'setup.toLogin': 'Go to the login page',
  },
  zh: {
    'setup.title': '初始化 chatgate',
    'setup.sub': '创建第一个管理员。',
    'setup.username': '管理员用户名',
    'setup.password': '密码（至少 8 个字符）',
    'setup.again': '再次输入密码',
    'setup.submit': '创建管理员',
    'setup.busy': '正在创建…',
    'setup.mismatch': '两次输入的密码不一致。',
    'setup.noToken': '此页面需要服务器日志中的初始化链接（…/setup?token=…）。',
    'setup.done': '已经有管理员了，此初始化链接已失效。',
    'setup.doneHint': '请直接登录。',
    'setup.badToken': '此初始化链接无效。',
    'setup.badTokenHint': '请从服务器日志中复制完整链接；它只能使用一次，且仅在还没有管理员时有效。',
    'setup.failed': '无法创建管理员：{message}',
    'setup.toLogin': '前往登录页',
  },
});

export default function Setup() {
  const token = new URLSearchParams(location.search).get('token') || '';
  const [needed, setNeeded] = useState(/** @type {boolean|null} */ (null));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(/** @type {{title: string, detail?: string}|null} */ (null));
  const alertRef = useRef(/** @type {HTMLDivElement|null} */ (null));

  useEffect(() => {
    request('GET', '/api/v1/setup')
      .then((s) => setNeeded(Boolean(s && s.needed)))
      .catch(() => setNeeded(true));
  }, []);
  useEffect(() => {
    if (error) alertRef.current?.focus();
  }, [error]);

  const submit = async (event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const username = String(form.get('username') || '').trim();
    const password = String(form.get('password') || '');
    if (password !== String(form.get('again') || '')) return setError({ title: t('setup.mismatch') });
    setBusy(true);
    setError(null);
    try {
      await request('POST', '/api/v1/setup', { token, username, password, cookie: true });
      const who = await whoAmI();
      me.value = who && who.user ? who.user : who;
      history.replaceState(null, '', '/setup');
      navigate('/admin', { replace: true });
    } catch (e) {
      setBusy(false);
      if (e.status === 409) {
        setNeeded(false);
      } else if (e.status === 403 || e.status === 401) {
        setError({ title: t('setup.badToken'), detail: t('setup.badTokenHint') });
      } else {
        setError({ title: t('setup.failed', { message: e.message }) });
      }
    }
  };

  let body;
  if (needed === null) body = html`<div aria-busy="true"></div>`;
  else if (!needed) {
    body = html`<div class="alert alert-error setup-done" role="alert">
        <strong>${t('setup.done')}</strong>
        <p>${t('setup.doneHint')}</p>
      </div>
      <a class="btn btn-primary" href="/login">${t('setup.toLogin')}</a>`;
  } else if (!token) {
    body = html`<div class="alert alert-error" role="alert"><strong>${t('setup.noToken')}</strong></div>`;
  } else {
    body = html`${error &&
      html`<div class="alert alert-error setup-error" role="alert" tabindex="-1" ref=${alertRef}>
        <strong>${error.title}</strong>
        ${error.detail && html`<p>${error.detail}</p>`}
      </div>`}
      <form onSubmit=${submit} aria-busy=${busy ? 'true' : 'false'}>
        <div class="field">
          <label for="setup-username">${t('setup.username')}</label>
          <input id="setup-username" name="username" class="input" autocomplete="username"
            autocapitalize="none" spellcheck=${false} maxlength="64" required />
        </div>
        <div class="field">
          <label for="setup-password">${t('setup.password')}</label>
          <input id="setup-password" name="password" type="password" class="input" minlength="8"
            autocomplete="new-password" required />
        </div>
        <div class="field">
          <label for="setup-again">${t('setup.again')}</label>
          <input id="setup-again" name="again" type="password" class="input" minlength="8"
            autocomplete="new-password" required />
        </div>
        <button type="submit" class="btn btn-primary" disabled=${busy}>
          ${busy ? t('setup.busy') : t('setup.submit')}
        </button>
      </form>`;
  }
  return html`<main class="page-login"><div class="page-center"><div class="login-card setup-card">
    <h1>${t('setup.title')}</h1>
    <p class="sub">${t('setup.sub')}</p>
    ${body}
    <div class="login-tools">
      <${LanguageSwitch} id="setup-lang" />
      <${ThemeSwitch} id="setup-theme" />
    </div>
  </div></div></main>`;
}
