/**
 * The account page: who is logged in, today's usage against the limits, language and theme,
 * one's API keys, and the password.
 */
import { html } from 'htm/preact';
import { useEffect } from 'preact/hooks';
import { me, usage, navigate } from '../state.js';
import { logout } from '../api/account.js';
import { t, formatNumber } from '../i18n/index.js';
import { ThemeSwitch } from '../theme/theme.js';
import { LanguageSwitch } from '../login/login.js';
import { refreshUsage, resetTime } from './limits.js';
import { QuotaNotice } from './meter.js';
import { Keys } from './keys.js';
import { PasswordForm } from './password.js';

function Stat({ label, value }) {
  return html`<div class="stat"><div class="value">${value}</div><div class="label">${label}</div></div>`;
}

function Today() {
  const today = usage.value;
  if (!today || !today.requests) return null;
  const left = (count) => (count.limit == null ? t('common.none') : formatNumber(count.remaining));
  return html`<section aria-labelledby="today-title">
    <h2 id="today-title">${t('account.usage')}</h2>
    <${QuotaNotice} />
    <div class="stats">
      <${Stat} label=${t('account.requestsUsed')} value=${formatNumber(today.requests.used)} />
      <${Stat} label=${t('account.requestsLeft')} value=${left(today.requests)} />
      <${Stat} label=${t('account.tokensUsed')} value=${formatNumber(today.tokens.used)} />
      <${Stat} label=${t('account.tokensLeft')} value=${left(today.tokens)} />
    </div>
    <p class="muted">${t('account.resetsAt', { time: resetTime(today), tz: today.timezone })}</p>
  </section>`;
}

export function AccountPage() {
  useEffect(() => {
    refreshUsage();
    document.getElementById('account-title')?.focus();
  }, []);
  const user = me.value;

  const leave = async () => {
    try {
      await logout();
    } finally {
      me.value = null;
      usage.value = null;
      navigate('/login', { replace: true });
    }
  };

  return html`<div class="page account-page">
    <div class="row" style="margin-bottom: 1rem">
      <h1 id="account-title" tabindex="-1" style="margin: 0">${t('account.title')}</h1>
      <span class="spacer"></span>
      <button type="button" class="btn" onClick=${() => navigate('/')}>${t('account.back')}</button>
      <button type="button" class="btn" onClick=${leave}>${t('account.logout')}</button>
    </div>
    ${user && html`<p class="muted">${t('account.signedInAs', { name: user.username, role: user.role })}</p>`}
    <${Today} />
    <section aria-labelledby="prefs-title">
      <h2 id="prefs-title">${t('account.preferences')}</h2>
      <div class="settings-grid">
        <div class="field">
          <span class="label" aria-hidden="true">${t('lang.label')}</span>
          <${LanguageSwitch} id="account-lang" />
        </div>
        <div class="field">
          <span class="label" aria-hidden="true">${t('theme.label')}</span>
          <${ThemeSwitch} id="account-theme" />
        </div>
      </div>
    </section>
    <${Keys} />
    <${PasswordForm} />
  </div>`;
}
